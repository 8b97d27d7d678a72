/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The one interface between the BPF programs and userspace. Rust never
 * re-declares these: it uses the types libbpf-cargo generates from the
 * skeleton (`types::event`, `types::event_kind`), so a change here is a
 * compile error on the Rust side rather than a silent layout mismatch.
 */
#ifndef UTRACE_H
#define UTRACE_H

/* Frames kept per thread with timestamp and stack pointer. Deeper calls are
 * still counted (depth stays exact) but cannot be time-filtered or checked
 * against the stack pointer. */
#define MAX_FRAMES 128

enum event_kind {
	EV_ENTRY = 1,
	EV_EXIT = 2,
	/* The process's mappings changed (dlopen, dlclose, exec): it is
	 * stopped until userspace has attached what was mapped. */
	EV_LOAD = 3,
};

enum event_flags {
	/* The thread lost events (ring buffer full) just before this one. */
	EVF_AFTER_LOSS = 1,
};

/* 16 bytes. The thread is in the batch's head: events travel in batches. */
struct event {
	__u64 ts;    /* bpf_ktime_get_ns(): CLOCK_MONOTONIC, ns */
	__u32 func;  /* function id: the attach cookie */
	__u16 depth; /* 0 for an outermost traced call; an exit carries its entry's depth */
	__u8 kind;   /* enum event_kind */
	__u8 flags;  /* EVF_* */
};

/* Events wait in their thread's state and go out as one ring-buffer record
 * of up to BATCH_EVENTS: a reservation per event cost more than the rest of
 * the BPF side of a traced call. */
#define BATCH_EVENTS 32

struct batch_head {
	__u32 pid; /* thread group id, as userspace sees it */
	__u32 tid;
};

/* One ring-buffer record: a head, then (record size - head) / event size
 * events of that thread, oldest first. */
struct batch {
	struct batch_head head;
	struct event events[BATCH_EVENTS];
};

/* Counting mode: one per traced function and CPU. */
struct func_stats {
	__u64 count;
	__u64 total_ns;
	__u64 self_ns; /* less traced callees */
	__u64 min_ns;
	__u64 max_ns;
};

#endif
