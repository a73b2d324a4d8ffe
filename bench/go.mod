module github.com/robustmqtt/mqtt/bench

go 1.26.0

require (
	github.com/mochi-mqtt/server/v2 v2.7.9
	github.com/robustmqtt/mqtt v0.0.0-00010101000000-000000000000
	go.uber.org/goleak v1.3.0
)

replace github.com/robustmqtt/mqtt => ../
