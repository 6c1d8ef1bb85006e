"""The supervisor process (`electd serve`, `electd run`) and the node's end of its pipe.

supervisor.py  the parent process: node process lifecycle, crash failover (closes a dead
               node's session), signals
command.py     the leader command bound to the term (the supervisor's lease deadline)
process.py     prctl, the process tree, pid namespaces
protocol.py    the messages on the pipe
link.py        the node process's end (imported by app.py)
Imports neither grpc nor the election engine.
"""
