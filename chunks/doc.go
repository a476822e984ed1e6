// Package chunks turns bytes arriving in requests into published files.
//
// Every way bytes arrive moves an upload session through one state machine
// (advance.go). It decides which chunk of an upload a request carries
// (position.go), streams the bytes to every selected mirror in pieces while
// they arrive, hashing them once on the way (write.go), keeps writers of one
// upload apart with leases in the store (lease.go), applies the write quorum
// and the account's mirror limits (policy.go), publishes the file record
// once every byte is held (publish.go), reads files back from the first
// mirror that answers (read.go), and removes abandoned uploads and expired
// files (lifecycle.go). It heals as well: missing copies are made again
// (repair.go), every copy is re-read and checked against its SHA-256
// (scrub.go), what no record names is swept off the mirrors (janitor.go),
// and aborts that fail are retried in the background (abort.go). Stream
// uploads (tus) continue at an offset under a lease their caller holds
// (stream.go, streamlease.go) and can be joined from partial uploads
// (join.go). Upload sessions live in the store, so any node can take the
// next chunk of any upload. It knows nothing about HTTP.
package chunks
