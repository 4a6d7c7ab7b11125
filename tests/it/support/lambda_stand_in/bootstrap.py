"""Stand-in for the Lambda Python runtime, for layerport's tests.

Imports the handler's module the way Lambda does (LAMBDA_TASK_ROOT first on sys.path, then the
layers' /opt/python directories that the image's PYTHONPATH names), calls the handler once with the
event (JSON from $LAMBDA_EVENT, else stdin) and a small context, and prints the result as JSON on
stdout. A failure prints Lambda's error document ({"errorType", "errorMessage"}) on stdout, the
traceback on stderr, and exits 1.
"""

import importlib
import json
import os
import sys
import traceback


class Context:
    """The attributes and method handlers use most, with fixed values so output is deterministic."""

    function_name = "layerport-test"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:layerport-test"
    memory_limit_in_mb = "128"
    aws_request_id = "00000000-0000-4000-8000-000000000000"
    log_group_name = "/aws/lambda/layerport-test"
    log_stream_name = "stand-in"

    def get_remaining_time_in_millis(self):
        return 30000


def fail(error_type, message):
    print(json.dumps({"errorType": error_type, "errorMessage": message}, sort_keys=True))
    traceback.print_exc()
    sys.exit(1)


def main():
    module_name, _, function_name = sys.argv[1].rpartition(".")
    if not module_name or not function_name:
        fail("Runtime.MalformedHandlerName", "Bad handler '%s': expected MODULE.FUNCTION" % sys.argv[1])
    sys.path.insert(0, os.environ["LAMBDA_TASK_ROOT"])
    raw = os.environ.get("LAMBDA_EVENT")
    if raw is None:
        raw = sys.stdin.read()
    try:
        event = json.loads(raw or "{}")
    except ValueError as e:
        fail("Runtime.UnmarshalError", "Unable to parse the event: %s" % e)
    try:
        module = importlib.import_module(module_name)
    except Exception as e:
        fail("Runtime.ImportModuleError", "Unable to import module '%s': %s" % (module_name, e))
    handler = getattr(module, function_name, None)
    if not callable(handler):
        fail("Runtime.HandlerNotFound", "Handler '%s' missing on module '%s'" % (function_name, module_name))
    try:
        result = handler(event, Context())
    except Exception as e:
        fail(type(e).__name__, str(e))
    print(json.dumps(result, sort_keys=True))


if __name__ == "__main__":
    main()
