"""The fields of a state-transition log line, which `--log-format json` prints beside `msg`
(cli.py's formatter, engine/model.py's `transition`). Here, not in the engine, so that the
supervisor can log without loading the engine. Imports nothing."""

TRANSITION_FIELDS = (
    "event",
    "node",
    "election",
    "epoch",
    "from_role",
    "to_role",
    "reason",
    "leader",
)
