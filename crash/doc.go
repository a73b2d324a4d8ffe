// Package crash is the kill -9 suite of the client's durable session store
// (Config.Store with a store.File). It holds tests only.
//
// # What it proves
//
// With a file store, a QoS 1 or 2 message that PublishAsync has accepted
// (PublishAsync returned: the message is durably in the store) is delivered
// even if the process is killed with SIGKILL at any moment, any number of
// times, with the broker stopped or restarted in between: a later process
// that opens the same store with the same ClientID sends what the killed
// ones left. QoS 2 messages arrive exactly once, QoS 1 at least once (the
// duplicates are counted and reported), and once a last process has had
// everything acknowledged the store holds no record.
//
// # How
//
// The test binary runs itself again as the child (os.Args[0]
// -test.run=^TestCrashChild$, with ROBUSTMQTT_CRASH_CHILD set to its mode
// and the store path, broker URL, run number and protocol level in the
// environment). The child opens the store, dials with a fixed ClientID and
// a persistent session, and publishes QoS 1 and 2 messages as fast as it
// can from four goroutines with PublishAsync, at most 200 results
// outstanding; each payload ("r3-s1207-q2": run, sequence, QoS) is unique.
// As soon as PublishAsync returns it writes "stored <payload>" on stdout,
// one write(2) per line, which the parent reads through a pipe.
//
// The parent runs an embedded broker (mqtttest.Broker, whose sessions
// survive Stop and Start) and a subscriber with a persistent session,
// subscribed at QoS 2, that counts every delivery per payload. It lets
// each child store a random number of messages, then run a random time,
// and kills it with SIGKILL. After the kills a child in "finish" mode opens
// the store, calls Flush (everything it restored acknowledged), publishes a
// QoS 1 barrier, calls Disconnect and exits 0. The parent waits until the
// barrier and every payload a child said was stored have arrived, checks
// the ledger, and opens the store to check that it is empty. The schedule
// (how many messages before each kill, how long after, which broker fault)
// comes from a seed that every test logs, with the command that replays it.
//
//   - TestCrashKill9: ten kills; before each, at random, nothing, a broker
//     restart while the child publishes, the broker stopped across the kill
//     (the child queues meanwhile), or a restart between two runs.
//   - TestCrashBrokerDown: each child connects, the broker stops, and only
//     then does it publish: its messages are only queued, never sent, when
//     it is killed. A later child restores them (and sends them once it is
//     connected).
//   - TestCrashTornTail: after each kill the parent cuts 1 to 8 bytes off
//     the end of the store file, tearing its last record as a crash in the
//     middle of a write would. Opening the store must keep every other
//     record (the test compares the records before and after the cut:
//     exactly one may differ), and the next runs must deliver every stored
//     message but, possibly, the torn record's.
//
// After every kill the parent opens the store itself, as the next child
// will, and counts the kills that left a torn write behind (Open cuts it
// off and says nothing; the test logs it).
//
// # The torn record, honestly
//
// How the client uses the file (session_store.go, store.File): PublishAsync
// returns only after the write that holds the message's record has been
// fsynced; the records of its progress (the packet identifier it was
// given, PUBREC received) are fsynced before the PUBLISH or PUBREL that
// depends on them is written; its removal after PUBACK or PUBCOMP rides on
// the next sync. A crash can tear only a write that was not yet fsynced,
// so a torn record is one of these: the first record of a message never
// reported stored (its loss is allowed); progress nothing on the wire
// depends on yet (the message goes again from its earlier state, which is
// right); or a removal (a QoS 1 message goes again, an allowed duplicate;
// a QoS 2 message only sends its PUBREL again). So nothing reported stored
// can be lost, and no QoS 2 message doubled, by a torn write.
//
// A SIGKILL tears a write only rarely (Linux interrupts a write to a
// regular file for a fatal signal only between pages, and the client's
// writes here are a few KiB), so TestCrashTornTail tears the file itself.
// But its cut hits the last record whatever it is, often one that was
// fsynced and whose message was reported stored, which no real crash can
// tear. So the test allows what such a cut can do: the torn record's
// message may be lost (its first record was cut), or, for QoS 2, be sent
// again as new and arrive twice (a record of its progress was cut, after
// the PUBLISH had gone). It logs which record it tore and whether its
// message had been reported stored. What the test proves is that recovery
// keeps every intact record and that the client finishes each of them. That
// nothing reported stored can be torn follows from the ordering above, not
// from this test; neither proves durability across a power cut, which also
// depends on the disk honouring fsync.
//
// # Running it longer
//
//	go test ./crash                               # about 10 s; 10 kills, 5 tears, 3 kills while the broker is down
//	go test ./crash -run TestCrashKill9 -v -crash.kills=500 -crash.hold=1s
//	go test ./crash -count=20                     # twenty schedules, each from a new seed
//	go test ./crash -run TestCrashKill9 -crash.seed=1234 -crash.kills=10  # replay a schedule
//	go test ./crash -crash.version=5              # the same over MQTT 5
//
// -crash.kills sets TestCrashKill9's kills; TestCrashTornTail tears half as
// many times and TestCrashBrokerDown kills a third as many. -crash.hold is
// the longest a child publishes, after its first messages are stored,
// before it is killed. With -v each test logs its figures: kills, broker
// faults, records restored by each run, messages stored and delivered,
// duplicates.
package crash
