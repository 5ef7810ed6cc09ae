// A Lambda-style Node.js handler (ESM, async): handler(event, context).
export const handler = async (event, context) => {
  const name = (event && event.name) || "world";
  console.log(`greeting ${name}`); // console output becomes the invocation's logs
  return {
    message: `Hello, ${name}!`,
    node: process.version,
    requestId: context.awsRequestId,
    remainingMs: context.getRemainingTimeInMillis(),
  };
};
