#!/usr/bin/env bash
#
# test_soak.sh - the short soak in the integration suite: tests/soak/run --short (64
# sessions over both stacks, 1024 reservations a round, 16 NBD clients x 30 s of fio
# verify=crc32c, the API polled; no error, and toegw's fds exactly and its RSS nearly back
# where they started once every session is deleted). The full soak (32 clients x 60 s, or
# longer with --seconds N) is run on demand: see docs/soak.md.
exec bash "$(dirname "$0")/../soak/run" --short "$@"
