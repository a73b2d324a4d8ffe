package mqtt

import "testing"

// MaxInflight 0 is the default of the protocol level: MQTT 3.1.1 cannot
// learn the broker's limit and gets the smallest among brokers; MQTT 5 gets
// a larger one, cut to the broker's Receive Maximum. An explicit value is
// kept, and the queue always holds at least the window.
func TestMaxInflightDefaultByVersion(t *testing.T) {
	for _, tc := range []struct {
		version  byte
		inflight int
		want     int
	}{
		{0, 0, DefaultMaxInflight},
		{4, 0, DefaultMaxInflight},
		{5, 0, DefaultMaxInflightV5},
		{4, 7, 7},
		{5, 7, 7},
		{4, 5000, 5000},
	} {
		cfg := Config{Servers: []string{"tcp://127.0.0.1:1883"}, ClientID: "x", Version: tc.version, MaxInflight: tc.inflight}
		s, err := cfg.validate()
		if err != nil {
			t.Fatalf("version %d, MaxInflight %d: %v", tc.version, tc.inflight, err)
		}
		if s.MaxInflight != tc.want {
			t.Errorf("version %d, MaxInflight %d: window %d, want %d", tc.version, tc.inflight, s.MaxInflight, tc.want)
		}
		if s.MaxQueued < s.MaxInflight {
			t.Errorf("version %d, MaxInflight %d: MaxQueued %d is below the window", tc.version, tc.inflight, s.MaxQueued)
		}
	}
	if DefaultMaxInflight > 20 {
		t.Errorf("DefaultMaxInflight %d is above Mosquitto's max_inflight_messages (20), the smallest limit of a broker's default configuration", DefaultMaxInflight)
	}
}
