#!/bin/sh
# Stand-in for the AWS base images' /lambda-entrypoint.sh, for layerport's tests: runs the handler
# named by the image's Cmd once, on the event in $LAMBDA_EVENT or on stdin, and prints its result.
# `python3` is found through the image's PATH and the runtime through its LAMBDA_RUNTIME_DIR, so an
# image whose Env was lost fails here, loudly, as it would on Lambda.
set -eu
if [ "$#" -ne 1 ]; then
  echo "usage: /lambda-entrypoint.sh MODULE.FUNCTION (the image's Cmd)" >&2
  exit 2
fi
exec python3 "${LAMBDA_RUNTIME_DIR:?is not set: the image config lost its Env}/bootstrap.py" "$1"
