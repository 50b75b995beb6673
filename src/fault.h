/*
 * fault.h: fault injection for tests (the SQLite way: crashes are a normal
 * test input). FERRY_FAULT=name[:N] in the environment makes the process
 * kill itself with SIGKILL the Nth time (default 1st) it passes
 * fault_point(name), exactly as kill -9 would at that moment. Unset, a fault
 * point costs one pointer test.
 *
 * Points: clone.after-slot, clone.after-pre-data, copy.mid-item (every
 * 64 kB streamed inside a table copy), copy.after-item (each committed table
 * or part), clone.after-data, step.after (each committed post-data step),
 * clone.before-done; freeze.after-revoke; switchover.after-freeze,
 * switchover.after-drain, switchover.after-reverse (reverse objects made,
 * before the intent), switchover.before-switch-hook (intent recorded),
 * switchover.after-switch-hook (before the hand-over and phase switched),
 * switchover.resume-drained (a rerun that finishes forward, before its
 * hook); rollback.after-freeze, rollback.after-drain; with PgBouncers
 * (pooler.h): switchover.after-pause (paused, the source not frozen yet),
 * switchover.after-repoint (entries at the target, still paused, before
 * the switch hook), switchover.after-resume (resumed, before the
 * hand-over; also after a rollback's resume).
 */
#ifndef FERRY_FAULT_H
#define FERRY_FAULT_H

void		fault_point(const char *name);

#endif
