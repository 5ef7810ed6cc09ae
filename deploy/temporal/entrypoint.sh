#!/bin/sh
# Starts temporal-server with its embedded configuration template, bound to this
# container's address (what the upstream image does too).
set -eu
: "${BIND_ON_IP:=$(getent hosts "$(hostname)" | awk '{print $1; exit}')}"
export BIND_ON_IP
if [ "$BIND_ON_IP" = 0.0.0.0 ] || [ "$BIND_ON_IP" = ::0 ]; then
	: "${TEMPORAL_BROADCAST_ADDRESS:=$(getent hosts "$(hostname)" | awk '{print $1; exit}')}"
	export TEMPORAL_BROADCAST_ADDRESS
fi
exec temporal-server start
