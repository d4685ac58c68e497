/** The desktop guest's kernel command line: the screen and the serial console, quiet, never blank. */
export const guestKernelAppend = "console=tty0 console=ttyS0 quiet loglevel=3 consoleblank=0 panic=-1";
