// Package store keeps an MQTT client's session state (the messages it has
// accepted and not yet had acknowledged, the packet identifiers in use)
// where it survives a restart: of the client, with [Memory], or of the
// process and the machine, with [File].
//
// A [Store] is a map from uint64 keys to opaque values, read back in key
// order with Load. Put and Delete change it; Sync makes every change so far
// durable. The client puts a message before it writes the PUBLISH, and
// calls Sync once for all the messages accepted meanwhile: many publishers
// share one fsync (group commit). Both kinds of store are bounded: a Put
// that would take the live data (8 bytes per key plus the values) over the
// limit fails with an error wrapping [ErrFull] and changes nothing.
//
//	s, err := store.Open("/var/lib/app/session.db", store.Options{})
//	if err != nil { ... }      // errors.Is(err, store.ErrCorrupt), store.ErrLocked
//	defer s.Close()
//	s.Load(func(key uint64, value []byte) error { ...; return nil })
//	s.Put(7, msg)
//	s.Sync()                   // now msg survives a power cut
//
// A store is used by one goroutine at a time (the client's session
// goroutine); it has no locks.
//
// # The file
//
// A [File] is an append-only log: a 16-byte header (the magic "RMQSTORE",
// a format version and a checksum), then one record per Put or Delete:
// its length, a CRC-32C of the length, a CRC-32C of the body, and the body
// (an op, the key, the value). Sync writes the records buffered since the
// last Sync in one write and fsyncs the file.
//
// When the log grows to more than twice the size its live records need
// plus 1 MiB, Sync compacts it: the live records are written to
// path+".tmp", which is fsynced and renamed over the file, and the
// directory is fsynced. A crash at any moment leaves either the old file or
// the new one in place; Open deletes a leftover path+".tmp".
//
// A third file, path+".lock", carries an flock that keeps a second Open of
// the same path away, in this process or in another one: that Open fails
// with an error wrapping [ErrLocked]. The kernel releases the lock when the
// process dies. Where package syscall has no flock (Windows, Plan 9, wasm),
// only a second Open in the same process is refused.
//
// The three files are created with mode 0600, and the store follows no
// symbolic link at any of them (the directories above may be links):
// someone who can write in the directory could otherwise plant a link
// there and make the store overwrite, append to or lock another file of
// its user. A link at path+".tmp" is removed like any leftover; one at
// path or path+".lock" makes Open fail with an error that says so. To keep
// the store on another disk, link its directory. Where package syscall has
// no O_NOFOLLOW (Windows), links are followed.
//
// # Recovery
//
// A crash during a write leaves a torn last record. Open recovers every
// record before it and cuts it off. A record is torn when nothing but it,
// and perhaps zero bytes, follows: the file ends inside it, or its body's
// checksum fails and it ends exactly at the end of the file, or zero bytes
// begin inside it and run to the end. A file that is empty or holds only
// the beginning of a header opens as an empty store. Anything else wrong with the file (not
// a store file, an unknown format version, a checksum that fails in the
// middle of the log, an impossible length) is damage: Open fails with a
// [*CorruptError], which matches [ErrCorrupt] and says the path, the byte
// offset and what is wrong, and leaves the file untouched. Open never
// drops an intact record silently: the length of every record has its own
// checksum, so a damaged length cannot pass for a torn tail and hide the
// records after it. Open never allocates in proportion to a length it has
// read, and never panics on any content.
//
// Recovery assumes what Linux file systems (ext4, XFS, btrfs) provide: an
// appending write that a crash interrupts leaves a prefix of its bytes, and
// possibly zero bytes where the file grew but the data was not yet written.
package store
