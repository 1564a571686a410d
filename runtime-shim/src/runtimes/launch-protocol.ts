/**
 * Between the shim's launcher and a runtime bootstrap of Hearth's own: when this variable names a
 * file descriptor, the runtime was started while its private /tmp was still being made, and the
 * launcher writes its status there ("0" and a newline once /tmp is in place). The bootstrap loads
 * no function code before reading it, and exits with SANDBOX_FAILED_EXIT_CODE on anything else.
 */
export const TMP_READY_FD_VARIABLE = 'HEARTH_TMP_READY_FD';

/** The launcher's exit code when the sandbox could not be made. */
export const SANDBOX_FAILED_EXIT_CODE = 125;

/**
 * The V8 flag with which the shim gives Hearth's Node runtime its heap limit
 * (`<flag>=<MB>`); the runtime finds it among its arguments (nodejs/code-cache.ts).
 */
export const NODE_HEAP_LIMIT_FLAG = '--max-old-space-size';
