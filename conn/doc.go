// Package conn is one MQTT network connection, used once.
//
// [Open] dials a server, sends CONNECT and waits for CONNACK. The returned
// [Conn] then runs two goroutines, started by its owner (in this module, the
// supervisor of the client):
//
//   - [Conn.ReadLoop] decodes frames and hands every one to the session on
//     the channel given in [Config.Inbound]. It answers nothing itself; it
//     only checks that a frame is one a server may send.
//   - [Conn.WriteLoop] drains the frames queued with [Conn.Send], encodes
//     them into one reused buffer and writes everything queued in one
//     system call. It also keeps the connection alive: PINGREQ when the link
//     has been quiet for (nearly) the keepalive interval, and failure when no frame
//     at all arrives within half an interval after that (the half-dead
//     Wi-Fi case, where TCP stays open but nothing gets through).
//
// When anything fails, the Conn records one error saying what happened
// ([Conn.Err]), closes [Conn.Done], closes the socket, and both loops
// return that error. A Conn is never reused: the session dials a new one.
//
// Package conn knows MQTT framing and the keepalive rule, and nothing about
// sessions, packet identifiers or retries.
package conn
