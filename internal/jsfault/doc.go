// Package jsfault tests the JetStream store (package jsstore) on a
// three-node cluster in the test process while a node fails mid-load: the
// node leading most streams is stopped hard, or cut off from the others
// by a network partition while its clients stay connected to it, and then
// brought back. It has tests only; the drain by three engines on three
// nodes is jsstore's TestClusterDrain.
package jsfault
