// Package conn is one MQTT network connection, used once.
//
// [Open] dials a server, sends CONNECT and waits for CONNACK, answering
// the broker's AUTH challenges in between when the CONNECT starts an MQTT
// 5 enhanced authentication ([Config.Auth]). The returned [Conn] then runs
// two goroutines, started by its owner (in this module, the supervisor of
// the client):
//
//   - [Conn.ReadLoop] decodes frames and hands every one to the session on
//     the channel given in [Config.Inbound]. It answers nothing itself; it
//     only checks that a frame is one a server may send.
//   - [Conn.WriteLoop] drains the frames queued with [Conn.Send], encodes
//     them into one reused buffer and writes everything queued in one
//     system call. It also keeps the connection alive: PINGREQ when the link
//     has been quiet for (nearly) the keepalive interval, and failure when
//     not a single byte arrives within half an interval after that (the
//     half-dead Wi-Fi case, where TCP stays open but nothing gets through).
//     Every byte received counts, so a large message on a slow link is not
//     mistaken for silence while it arrives. With [Config.TopicAliases] it
//     gives the topics of MQTT 5 PUBLISH packets Topic Aliases as it
//     encodes them, so that the aliases follow what is really written.
//
// When anything fails, the Conn records one error saying what happened
// ([Conn.Err]), closes [Conn.Done], closes the socket, and both loops
// return that error. A Conn is never reused: the session dials a new one.
//
// # Transports
//
// The scheme of the server URL picks the byte stream under MQTT
// ([ParseServer] fills in the default port):
//
//	tcp://, mqtt://          TCP, port 1883
//	tls://, ssl://, mqtts://  TLS over TCP, port 8883
//	ws://                    WebSocket, port 80
//	wss://                   WebSocket over TLS, port 443
//
// TLS (tls://, wss://) uses a clone of [Config.TLS]; when its ServerName is
// empty, the URL's host is the name the server's certificate must hold.
// A certificate that does not verify, or a server that refuses the
// client's certificate, is an error that names the server and the field of
// Config.TLS that fixes it (RootCAs, ServerName, Certificates), and wraps
// the crypto/tls and crypto/x509 errors for errors.As.
//
// WebSocket (RFC 6455, through github.com/coder/websocket) is an HTTP/1.1
// upgrade to the URL's path and query, or to [DefaultWebSocketPath] ("/mqtt")
// when the URL has no path, asking for the subprotocol "mqtt". MQTT then
// travels in binary messages: each write is one message, and a read ignores
// message boundaries, so a frame may span messages and a message may hold
// several frames. user:password@ in the URL is sent as HTTP Basic
// authentication; no HTTP proxy is used. Closing the connection drops it
// without the WebSocket closing handshake, which could hold a dead broker's
// connection for 10 seconds; the MQTT DISCONNECT is the goodbye.
//
// Package conn knows MQTT framing and the keepalive rule, and nothing about
// sessions, packet identifiers or retries.
package conn
