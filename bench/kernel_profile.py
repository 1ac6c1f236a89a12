"""Groups `perf report --sort dso,sym --stdio` output into where a proxy's
CPU goes, in µs per request: kernel symbols by subsystem, user space as
one. Usage: kernel_profile.py REQUESTS REPORT... (see kernel_profile.sh)."""

import re
import sys

# First match wins; the order matters (a wake-up's unlock before "other").
GROUPS = [
    ("context switches (finish_task_switch, scheduler)",
     r"finish_task_switch|schedule\b|__schedule|pick_next|dequeue|enqueue|update_curr|switch_|psi_|sched_"),
    ("wake-ups of other threads",
     r"_raw_spin_unlock_irqrestore|try_to_wake_up|ttwu|select_task_rq|wake_up|_raw_spin_unlock_irq\b"),
    ("TCP/IP over loopback",
     r"tcp|ip_|__ip|ipv4|net_rx|netif|skb|loopback|nf_|dev_|process_backlog|bbr|sk_|sock_|inet_|"
     r"napi|lock_sock|release_sock|softirq|csum|memcg|mem_cgroup|kmem_cache|kmalloc|__alloc|slab|"
     r"page_|copy_|__check_object_size|check_heap|__virt_addr|rep_movs|clear_bhb"),
    ("syscall entry, epoll, file and timer bookkeeping",
     r"do_syscall|entry_SYSCALL|syscall_|__x64_sys|ep_|epoll|fdget|fput|__fget|vfs_|do_writev|"
     r"do_iter|iovec|rw_verify|security_|apparmor|fsnotify|__sys_|rcu|read_tsc|ktime|hrtimer|"
     r"timerqueue|lapic|clockevents|irq|x86_|native_|exit_to_user|arch_exit|fpregs|fpu"),
]
USER = "user space (the proxy, libc, vDSO)"
OTHER = "other kernel"


def group(report: str) -> tuple[dict[str, float], float]:
    shares: dict[str, float] = {}
    total_ns = 0.0
    for line in open(report):
        if m := re.match(r"# Event count \(approx\.\): (\d+)", line):
            total_ns = float(m.group(1))  # cpu-clock counts nanoseconds
            continue
        m = re.match(r"\s*([\d.]+)%\s+\S+\s+\[(.)\]\s+(.*)", line)
        if not m:
            continue
        pct, kernel, symbol = float(m.group(1)), m.group(2) == "k", m.group(3)
        name = USER if not kernel else next(
            (n for n, rx in GROUPS if re.search(rx, symbol)), OTHER)
        shares[name] = shares.get(name, 0.0) + pct
    return shares, total_ns


def main() -> None:
    requests = int(sys.argv[1])
    reports = sys.argv[2:]
    grouped = [group(r) for r in reports]
    names = [n for n, _ in GROUPS] + [OTHER, USER]
    print("| where | " + " | ".join(f"{r} µs/req (share)" for r in reports) + " |")
    print("|---|" + "---|" * len(reports))
    for name in names:
        cells = [f"{s.get(name, 0) / 100 * t / requests / 1000:.2f} ({s.get(name, 0):.1f} %)"
                 for s, t in grouped]
        print(f"| {name} | " + " | ".join(cells) + " |")
    print("| total | " + " | ".join(f"{t / requests / 1000:.1f}" for _, t in grouped) + " |")


if __name__ == "__main__":
    main()
