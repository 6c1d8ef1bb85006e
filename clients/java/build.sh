#!/usr/bin/env bash
# Builds the Java client: generates io.electd.v1 from ../../proto (protoc and
# protoc-gen-grpc-java come from Maven Central as artifacts), compiles, runs the unit tests
# and packages the library (library/target/electd-client-0.1.0.jar) and the example CLI's
# runnable jar (example/target/electd-client-example-0.1.0-all.jar), then records a class-data
# sharing archive for the CLI so that `run` starts faster. Idempotent; works with an empty ~/.m2.
#
#   ./build.sh                 # full build with tests
#   ./build.sh -o -DskipTests  # extra arguments go to mvn (-o: offline, once ~/.m2 is filled)
set -euo pipefail
cd "$(dirname "$0")"
log() { printf 'java/build.sh: %s\n' "$*" >&2; }

# Java 17+ and Maven 3.8+ are on the project's machines; install them on a bare Debian.
../../scripts/lib/apt-ensure.sh --hint "need Java 17+ (javac) and Maven 3.8+ on PATH" \
  mvn,javac openjdk-17-jdk-headless maven

# Maven 3.8 prints stray colour-reset codes even with -q -B; strip them (pipefail keeps
# mvn's exit status).
mvn -q -B "$@" package 2>&1 | sed -u 's/\x1b\[0m//g'

# A dynamic CDS archive of the classes one run loads (about a third off JVM start-up).
# Recorded by a run that fails fast: nothing listens on port 1 of the loopback address.
jar=example/target/electd-client-example-0.1.0-all.jar
jsa=example/target/electd-client.jsa
rm -f "$jsa"
java -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -XX:ArchiveClassesAtExit="$jsa" \
  -jar "$jar" --json leader 127.0.0.1:1 >/dev/null 2>&1 || true
[ -f "$jsa" ] || log "note: no CDS archive recorded; run will start a bit slower"
log "built $jar"
