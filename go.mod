module github.com/robustmqtt/mqtt

go 1.26.0

require (
	github.com/coder/websocket v1.8.15
	github.com/mochi-mqtt/server/v2 v2.7.9
	go.uber.org/goleak v1.3.0
)

require (
	github.com/gorilla/websocket v1.5.3 // indirect
	github.com/rs/xid v1.4.0 // indirect
)
