package mosquitto_test

import (
	"os"
	"testing"

	"github.com/robustmqtt/mqtt/internal/mosquitto"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if os.Getenv(mosquitto.FakeMosquittoEnv) != "" {
		os.Exit(mosquitto.FakeMosquitto())
	}
	goleak.VerifyTestMain(m)
}
