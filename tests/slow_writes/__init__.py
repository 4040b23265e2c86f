"""An installed app for live-server tests: a write whose request id is `slow-<seconds>-...`
stalls that long inside its transaction (its row inserted, not committed), so a test can
have writes in flight when it signals the server. With `SLOW_WRITES_DIR` set, each stall
first leaves a file named after its request id there, to say it has begun."""
