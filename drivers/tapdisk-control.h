/* The control socket ctl<pid>: one request message in, one or more replies out. */
#ifndef _TAPDISK_CONTROL_H_
#define _TAPDISK_CONTROL_H_

/* Creates and listens on <control dir>/ctl<pid>, mode 0600.  Returns 0 or -errno. */
int tapdisk_control_open(char **path);
void tapdisk_control_close(void);

#endif
