// The function a new user starts from: answers with a greeting and what it was called with.
let invocations = 0; // module state survives between warm invocations

export const handler = async (event, context) => {
  invocations += 1;
  return {
    message: `Hello, ${event?.name ?? 'world'}!`,
    requestId: context.awsRequestId,
    warmInvocations: invocations,
  };
};
