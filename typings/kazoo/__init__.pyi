# Local type stubs for the parts of kazoo electd uses (kazoo ships no type information).
