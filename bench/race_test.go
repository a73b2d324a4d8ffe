//go:build race

package bench

// raceEnabled: the tests run with -race, which makes objects larger and
// stacks deeper: what TestIdleChild measures is then not the product.
const raceEnabled = true
