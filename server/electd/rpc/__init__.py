"""gRPC side of a node: the only server-side importer of grpc and the generated code.

hub.py       the one crossing from threads into the asyncio loop; views keyed by election
convert.py   engine model and candidate events -> proto messages
errors.py    our errors -> gRPC status codes (one table)
servicer.py  ElectionService, on top of the hub; knows nothing about znodes
campaign.py  the Campaign stream (candidates of named elections) on the registry's candidacies
server.py    server assembly: health, reflection, keepalive, port binding
"""
