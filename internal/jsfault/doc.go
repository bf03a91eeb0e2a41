// Package jsfault tests the JetStream store (package jsstore) on a
// three-node cluster in the test process while nodes fail: a stream
// leader stopped hard or cut off from the others mid-load, and three
// engines on three nodes draining runs. It has tests only.
package jsfault
