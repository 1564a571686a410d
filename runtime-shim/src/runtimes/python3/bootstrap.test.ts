import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startFunction, type FunctionUnderTest } from '../function-under-test.js';

// One Python function whose handler does what the event's "form" names: every form shares one
// warm runtime, as consecutive invocations do on Lambda.
const pythonFunction = {
  'app.py': `
import logging
import os

logger = logging.getLogger()
logger.setLevel(logging.INFO)
invocations = 0


class ValidationError(Exception):
    pass


def handler(event, context):
    global invocations
    invocations += 1
    form = event["form"]
    if form == "state":
        return {"invocations": invocations}
    if form == "nothing":
        return None
    if form == "context":
        client_context = context.client_context
        return {
            "function_name": context.function_name,
            "function_version": context.function_version,
            "invoked_function_arn": context.invoked_function_arn,
            "memory_limit_in_mb": context.memory_limit_in_mb,
            "aws_request_id": context.aws_request_id,
            "log_group_name": context.log_group_name,
            "log_stream_name": context.log_stream_name,
            "client_context_custom": client_context.custom if client_context else None,
            "identity_id": context.identity.cognito_identity_id,
            "remaining_time_in_millis": context.get_remaining_time_in_millis(),
            "env": {
                "MY_SETTING": os.environ.get("MY_SETTING"),
                "AWS_REGION": os.environ.get("AWS_REGION"),
                "_HANDLER": os.environ.get("_HANDLER"),
                "_X_AMZN_TRACE_ID": os.environ.get("_X_AMZN_TRACE_ID"),
            },
        }
    if form == "raise":
        raise ValidationError("the input was not valid")
    if form == "unserialisable":
        return {"when": object()}
    if form == "print":
        print("printed", "by the function")
        return "printed"
    if form == "log":
        logger.info("logged\\nacross lines")
        return "logged"
    raise KeyError(form)
`,
  'pkg/__init__.py': '',
  'pkg/nested.py': `
def handler(event, context):
    return {"module": __name__, "event": event}
`,
};

describe('Python runtime: handler behaviour through the shim', () => {
  let fn: FunctionUnderTest;
  before(async () => {
    fn = await startFunction({
      runtime: 'python3.11',
      handler: 'app.handler',
      files: pythonFunction,
      // Empty means unset: the runtime itself must make print() unbuffered, as on Lambda.
      env: { MY_SETTING: 'from the function config', PYTHONUNBUFFERED: '' },
      memoryMb: 512,
      timeoutSeconds: 10,
    });
  });
  after(() => fn?.stop());

  test('the handler returns JSON, None becomes null, and module state survives', async () => {
    const first = await fn.invoke({ form: 'state' });
    assert.equal(first.status, 200);
    assert.equal(first.functionError, null);
    const second = await fn.invoke({ form: 'state' });
    assert.equal(
      (second.json as { invocations: number }).invocations,
      (first.json as { invocations: number }).invocations + 1,
      'the second invocation sees the counter the first one left',
    );
    assert.equal((await fn.invoke({ form: 'nothing' })).body, 'null');
  });

  test('the context and environment carry the function settings and the invocation headers', async () => {
    const clientContext = { custom: { tenant: 'blue' }, env: { locale: 'en' } };
    const result = await fn.invoke(
      { form: 'context' },
      {
        requestId: 'py-ctx-1',
        clientContext,
        traceId: 'Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1',
      },
    );
    const context = result.json as Record<string, unknown> & { env: Record<string, string> };
    assert.equal(context.function_name, fn.name);
    assert.equal(context.function_version, '$LATEST');
    assert.match(
      String(context.invoked_function_arn),
      new RegExp(`^arn:aws:lambda:[^:]+:\\d+:function:${fn.name}`),
    );
    assert.equal(context.memory_limit_in_mb, '512');
    assert.equal(context.aws_request_id, 'py-ctx-1');
    assert.equal(context.log_group_name, `/aws/lambda/${fn.name}`);
    assert.ok(context.log_stream_name);
    assert.deepEqual(context.client_context_custom, { tenant: 'blue' });
    assert.equal(context.identity_id, null);
    const remaining = context.remaining_time_in_millis as number;
    assert.ok(remaining > 5_000 && remaining <= 10_000, `remaining ${remaining} ms`);
    assert.equal(context.env.MY_SETTING, 'from the function config');
    assert.ok(context.env.AWS_REGION);
    assert.equal(context.env._HANDLER, 'app.handler');
    assert.equal(context.env._X_AMZN_TRACE_ID, 'Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1');
  });

  test('an exception comes back in the Python shape: errorMessage, errorType, stackTrace', async () => {
    const result = await fn.invoke({ form: 'raise' });
    assert.equal(result.status, 200);
    assert.equal(result.functionError, 'Unhandled');
    const error = result.json as { errorMessage: string; errorType: string; stackTrace: string[] };
    assert.equal(error.errorType, 'ValidationError');
    assert.equal(error.errorMessage, 'the input was not valid');
    assert.equal(error.stackTrace.length, 1, 'only the function’s own frame, not the runtime’s');
    assert.match(
      error.stackTrace[0] ?? '',
      /File ".*app\.py", line \d+, in handler\n {4}raise ValidationError/,
    );
    // A handled error leaves the runtime warm.
    assert.ok(((await fn.invoke({ form: 'state' })).json as { invocations: number }).invocations > 1);
  });

  test('a result JSON cannot express is Runtime.MarshalError', async () => {
    const result = await fn.invoke({ form: 'unserialisable' });
    assert.equal(result.functionError, 'Unhandled');
    const error = result.json as { errorMessage: string; errorType: string };
    assert.equal(error.errorType, 'Runtime.MarshalError');
    assert.match(
      error.errorMessage,
      /^Unable to marshal response: Object of type object is not JSON serializable/,
    );
  });

  test('print() reaches the log at once; the root logger writes AWS records tagged with the request id', async () => {
    const printed = await fn.invoke({ form: 'print' }, { tail: true });
    assert.equal(printed.json, 'printed');
    assert.match(
      printed.logTail,
      /printed by the function/,
      'the output of print() is in its invocation’s log',
    );
    const result = await fn.invoke({ form: 'log' }, { requestId: 'py-log-1', tail: true });
    assert.equal(result.json, 'logged');
    assert.match(
      result.logTail,
      /\[INFO\]\t\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\tpy-log-1\tlogged\racross lines/,
      'a multi-line message stays one record',
    );
  });
});

describe('Python runtime: modules and init errors', () => {
  test('a handler in a package module (pkg.module.function)', async () => {
    const fn = await startFunction({
      runtime: 'python3.11',
      handler: 'pkg.nested.handler',
      files: pythonFunction,
    });
    try {
      assert.deepEqual((await fn.invoke({ hello: 'py' })).json, {
        module: 'pkg.nested',
        event: { hello: 'py' },
      });
    } finally {
      await fn.stop();
    }
  });

  for (const { title, files, errorType, errorMessage } of [
    {
      title: 'a syntax error is Runtime.UserCodeSyntaxError',
      files: { 'app.py': 'def handler(event, context)\n    return 1\n' },
      errorType: 'Runtime.UserCodeSyntaxError',
      errorMessage: /^Syntax error in module 'app': /,
    },
    {
      title: 'a missing module is Runtime.ImportModuleError',
      files: { 'other.py': '' },
      errorType: 'Runtime.ImportModuleError',
      errorMessage: /^Unable to import module 'app': No module named 'app'$/,
    },
    {
      title: 'a missing dependency is Runtime.ImportModuleError',
      files: { 'app.py': 'import not_installed_anywhere\n' },
      errorType: 'Runtime.ImportModuleError',
      errorMessage: /^Unable to import module 'app': No module named 'not_installed_anywhere'$/,
    },
    {
      title: 'a module that raises while importing fails init with that exception',
      files: { 'app.py': 'import os\nDATABASE_URL = os.environ["DATABASE_URL"]\n' },
      errorType: 'KeyError',
      errorMessage: /^'DATABASE_URL'$/,
    },
    {
      title: 'a missing function is Runtime.HandlerNotFound',
      files: { 'app.py': 'def other(event, context):\n    return 1\n' },
      errorType: 'Runtime.HandlerNotFound',
      errorMessage: /^Handler 'handler' missing on module 'app'$/,
    },
  ]) {
    test(title, async () => {
      const fn = await startFunction({ runtime: 'python3.11', handler: 'app.handler', files });
      try {
        const result = await fn.invoke({});
        assert.equal(result.status, 200);
        assert.equal(result.functionError, 'Unhandled');
        const error = result.json as { errorType: string; errorMessage: string };
        assert.equal(error.errorType, errorType);
        assert.match(error.errorMessage, errorMessage);
      } finally {
        await fn.stop();
      }
    });
  }
});
