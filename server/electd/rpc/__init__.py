"""gRPC side of a node: the only server-side importer of grpc and the generated code.

hub.py       the one crossing from engine threads into the asyncio loop
convert.py   engine model -> proto messages
errors.py    our errors -> gRPC status codes (one table)
servicer.py  ElectionService, on top of the hub; knows nothing about znodes
server.py    server assembly: health, reflection, keepalive, port binding
"""
