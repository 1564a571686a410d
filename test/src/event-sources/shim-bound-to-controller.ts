/**
 * The runtime shim as the process backend starts it (HEARTH_SHIM_ENTRY), but ending with the
 * controller that started it, as a pod's containers end with the pod. The process backend starts
 * each shim in a process group of its own, so a controller killed with SIGKILL leaves its shims
 * running; a test that kills controllers must not leave them behind.
 */
const controllerPid = process.ppid;

function controllerIsGone(): boolean {
  // Adopted by init already: the controller died between starting this process and now.
  if (controllerPid === 1) return true;
  try {
    process.kill(controllerPid, 0);
    return false;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

// The shim leads its process group: the runtime it started goes with it.
const endWithController = () => {
  if (controllerIsGone()) process.kill(-process.pid, 'SIGKILL');
};
endWithController();
setInterval(endWithController, 200).unref();

await import('@hearth/runtime-shim/main');
