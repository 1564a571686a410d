"""Hearth's Python runtime (python3.11), standard library only.

Loads the function's handler (`module.function`, `pkg.module.function` or `dir/module.function`
from LAMBDA_TASK_ROOT), then loops on the Lambda Runtime API as AWS documents it: ask for the
next event, call the handler, post its JSON result or its error. Errors, context and log format
follow AWS's own Python runtime, so functions written for Lambda behave the same here.
"""

import decimal
import http.client
import importlib
import io
import json
import logging
import os
import sys
import time
import traceback

RUNTIME_API_PATH = "/2018-06-01/runtime"


class FaultError(Exception):
    """An error the runtime raises itself; error_type is the Lambda type, e.g. Runtime.HandlerNotFound."""

    def __init__(self, error_type, message, stack_trace=None):
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.stack_trace = stack_trace or []


class RuntimeApiClient:
    """One keep-alive connection to the Runtime API carries every call, so a warm invocation
    costs two requests on an open socket."""

    def __init__(self, address):
        host, _, port = address.rpartition(":")
        self.host = host or address
        self.port = int(port) if host else 80
        self.connection = None

    def next_invocation(self):
        status, headers, body = self._call("GET", RUNTIME_API_PATH + "/invocation/next")
        if status != 200:
            raise RuntimeError("Runtime API /next answered %d: %r" % (status, body))
        return headers, body

    def post_response(self, request_id, body):
        self._post(RUNTIME_API_PATH + "/invocation/%s/response" % request_id, body)

    def post_error(self, request_id, error):
        self._post(RUNTIME_API_PATH + "/invocation/%s/error" % request_id, to_json(error), error["errorType"])

    def post_init_error(self, error):
        self._post(RUNTIME_API_PATH + "/init/error", to_json(error), error["errorType"])

    def _post(self, path, body, function_error_type=None):
        headers = {"Content-Type": "application/json"}
        if function_error_type:
            # Header values are printable ASCII; a class name may be any identifier.
            headers["Lambda-Runtime-Function-Error-Type"] = "".join(c for c in function_error_type if " " <= c <= "~")
        status, _, answer = self._call("POST", path, body, headers)
        # A 4xx refuses this one report (already answered, too large): the platform has settled
        # the invocation and the runtime goes on. A 5xx means the platform is broken: exit.
        if status >= 500:
            raise RuntimeError("Runtime API answered %d: %r" % (status, answer))
        if status != 202:
            sys.stderr.write("Runtime API answered %d: %r\n" % (status, answer))

    def _call(self, method, path, body=None, headers=None):
        try:
            return self._send(method, path, body, headers)
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            # The server closed the idle keep-alive connection: open a new one, once.
            self.connection.close()
            self.connection = None
            return self._send(method, path, body, headers)

    def _send(self, method, path, body, headers):
        if self.connection is None:
            self.connection = http.client.HTTPConnection(self.host, self.port)
        self.connection.request(method, path, body=body, headers=headers or {})
        response = self.connection.getresponse()
        return response.status, response.headers, response.read()


class JsonEncoder(json.JSONEncoder):
    # DynamoDB and friends hand out Decimals; AWS's runtime serialises them as numbers.
    def default(self, o):
        if isinstance(o, decimal.Decimal):
            return int(o) if o == o.to_integral_value() else float(o)
        return super().default(o)


def to_json(value):
    return json.dumps(value, cls=JsonEncoder, ensure_ascii=False).encode("utf-8")


# --- context -------------------------------------------------------------------------------


class CognitoIdentity:
    __slots__ = ["cognito_identity_id", "cognito_identity_pool_id"]


class Client:
    __slots__ = ["installation_id", "app_title", "app_version_name", "app_version_code", "app_package_name"]


class ClientContext:
    __slots__ = ["custom", "env", "client"]


def object_from_dict(cls, values):
    if values is None:
        return None
    obj = cls()
    for field in cls.__slots__:
        setattr(obj, field, values.get(field))
    return obj


class LambdaContext:
    def __init__(self, request_id, headers):
        self.aws_request_id = request_id
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION")
        # A string, as on AWS.
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME")
        self.invoked_function_arn = headers.get("Lambda-Runtime-Invoked-Function-Arn")
        self._deadline_ms = int(headers.get("Lambda-Runtime-Deadline-Ms") or 0)

        client_context = parse_json_header(headers.get("Lambda-Runtime-Client-Context"))
        self.client_context = object_from_dict(ClientContext, client_context)
        if self.client_context is not None:
            self.client_context.client = object_from_dict(Client, self.client_context.client)

        self.identity = object_from_dict(CognitoIdentity, {})
        cognito_identity = parse_json_header(headers.get("Lambda-Runtime-Cognito-Identity"))
        if cognito_identity is not None:
            self.identity.cognito_identity_id = cognito_identity.get("cognitoIdentityId")
            self.identity.cognito_identity_pool_id = cognito_identity.get("cognitoIdentityPoolId")

    def get_remaining_time_in_millis(self):
        return max(self._deadline_ms - int(time.time() * 1000), 0)

    def log(self, message):
        sys.stdout.write(str(message))

    def __repr__(self):
        return "LambdaContext(aws_request_id=%r, function_name=%r)" % (self.aws_request_id, self.function_name)


def parse_json_header(value):
    if not value:
        return None
    try:
        return json.loads(value)
    except ValueError:
        return None


# --- errors --------------------------------------------------------------------------------


def make_error(error_type, message, stack_trace, request_id=None):
    return {
        "errorMessage": message or "",
        "errorType": error_type or "",
        "requestId": request_id or "",
        "stackTrace": stack_trace or [],
    }


def is_runtime_frame(frame):
    return frame.filename in (__file__, importlib.__file__) or frame.filename.startswith("<frozen importlib")


def error_from_exception(exception, request_id=None):
    if isinstance(exception, FaultError):
        return make_error(exception.error_type, exception.message, exception.stack_trace, request_id)
    # The user sees their own frames, not the runtime's or the import machinery's.
    frames = [frame for frame in traceback.extract_tb(exception.__traceback__) if not is_runtime_frame(frame)]
    return make_error(type(exception).__name__, str(exception), traceback.format_list(frames), request_id)


def log_error(error):
    """One stdout record, as AWS writes it: `[ERROR] Type: message` and the traceback, joined by \\r."""
    description = "[ERROR] %s: %s" % (error["errorType"], error["errorMessage"])
    lines = [description]
    if error["stackTrace"]:
        lines.append("Traceback (most recent call last):")
        for element in error["stackTrace"]:
            lines.extend(element.splitlines())
    sys.stdout.write("\r".join(lines) + "\n")


# --- logging -------------------------------------------------------------------------------

current_request_id = ""


class RequestIdFilter(logging.Filter):
    def filter(self, record):
        record.aws_request_id = current_request_id
        return True


class OneRecordFormatter(logging.Formatter):
    converter = time.gmtime

    def format(self, record):
        # Newlines become \r so a multi-line message stays one record in the log.
        return super().format(record).replace("\n", "\r")


def setup_output():
    # print() reaches the log at once, in order with the invocation it belongs to, as `python -u`.
    sys.stdout = io.TextIOWrapper(io.FileIO(sys.stdout.fileno(), "w", closefd=False), encoding="utf-8", write_through=True)
    sys.stderr = io.TextIOWrapper(io.FileIO(sys.stderr.fileno(), "w", closefd=False), encoding="utf-8", write_through=True)
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        OneRecordFormatter("[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s", "%Y-%m-%dT%H:%M:%S")
    )
    handler.addFilter(RequestIdFilter())
    logging.getLogger().addHandler(handler)


# --- handler -------------------------------------------------------------------------------


def load_handler(handler_name):
    try:
        module_name, function_name = handler_name.rsplit(".", 1)
    except ValueError as error:
        raise FaultError("Runtime.MalformedHandlerName", "Bad handler '%s': %s" % (handler_name, error))
    module_name = module_name.replace("/", ".")
    if module_name.split(".")[0] in sys.builtin_module_names:
        raise FaultError(
            "Runtime.BuiltInModuleConflict", "Cannot use built-in module %s as a handler module" % module_name
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise FaultError("Runtime.ImportModuleError", "Unable to import module '%s': %s" % (module_name, error))
    except SyntaxError as error:
        trace = ['  File "%s" Line %s\n    %s' % (error.filename, error.lineno, error.text)]
        raise FaultError("Runtime.UserCodeSyntaxError", "Syntax error in module '%s': %s" % (module_name, error), trace)
    handler = getattr(module, function_name, None)
    if not callable(handler):
        raise FaultError("Runtime.HandlerNotFound", "Handler '%s' missing on module '%s'" % (function_name, module_name))
    return handler


def invoke(client, handler, headers, body):
    global current_request_id
    request_id = headers.get("Lambda-Runtime-Aws-Request-Id")
    current_request_id = request_id
    trace_id = headers.get("Lambda-Runtime-Trace-Id")
    if trace_id:
        os.environ["_X_AMZN_TRACE_ID"] = trace_id
    else:
        os.environ.pop("_X_AMZN_TRACE_ID", None)

    try:
        try:
            event = json.loads(body) if body else None
        except ValueError as error:
            raise FaultError("Runtime.UnmarshalError", "Unable to unmarshal input: %s" % error)
        result = handler(event, LambdaContext(request_id, headers))
        try:
            payload = to_json(result)
        except (TypeError, ValueError) as error:
            raise FaultError("Runtime.MarshalError", "Unable to marshal response: %s" % error)
    except Exception as exception:
        error = error_from_exception(exception, request_id)
        log_error(error)
        client.post_error(request_id, error)
        return
    client.post_response(request_id, payload)


def main():
    setup_output()
    client = RuntimeApiClient(os.environ["AWS_LAMBDA_RUNTIME_API"])
    task_root = os.environ.get("LAMBDA_TASK_ROOT") or os.getcwd()
    # The function's modules come first; the runtime's own directory must not shadow them.
    sys.path[0] = task_root
    try:
        handler = load_handler(os.environ.get("_HANDLER", ""))
    except Exception as exception:
        error = error_from_exception(exception)
        log_error(error)
        client.post_init_error(error)
        sys.exit(1)
    while True:
        headers, body = client.next_invocation()
        invoke(client, handler, headers, body)


if __name__ == "__main__":
    main()
