// kexbench - the guest benchmarks' own small tools (no USDT, no libraries).
//
//   kexbench now
//       CLOCK_MONOTONIC in ns, for a launch timestamp taken before a tracer starts.
//   kexbench run [--t0 NS] [--out FILE] [--label L] [--hold FILE] -- CMD ARGS...
//       Forks and execs CMD, waits for it and appends one JSON line to FILE
//       (stderr by default): wall_ns = fork to reap of CMD, its user and system
//       CPU time, and, with --t0, startup_ns = t0 to this fork: a tracer run as
//       `tracer -- kexbench run --t0 $(kexbench now) -- CMD` attaches before it
//       releases kexbench, so startup_ns is the tracer's start-up (attach) time,
//       kept apart from the workload's wall_ns. --hold FILE: wait until FILE
//       exists before forking (a tracer given this process's pid attaches first).
//   kexbench loop DEVICE PAGES LOOPS [--out FILE]
//       LOOPS times: mmap PAGES pages of DEVICE (MAP_SHARED), write one byte
//       per page, munmap. One JSON line: the loops' wall time and pages/s. The
//       event source of the loss benchmark (no exec per round).
//   kexbench ring PAGES
//       Another driver's pages (the any-driver overhead): an AF_PACKET RX ring
//       (TPACKET_V2) of PAGES one-page blocks, as tests/guest/ring.py sets it
//       up: net/packet allocates the pages at setsockopt, packet_mmap inserts
//       them with vm_insert_page; one byte written a page (past the frame
//       header), munmap, close (which frees them). Needs CAP_NET_RAW.
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <string_view>
#include <vector>

namespace {

uint64_t now_ns() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<uint64_t>(ts.tv_nsec);
}

uint64_t tv_us(const timeval& tv) {
    return static_cast<uint64_t>(tv.tv_sec) * 1'000'000ull + static_cast<uint64_t>(tv.tv_usec);
}

[[noreturn]] void usage() {
    std::fprintf(
        stderr,
        "usage: kexbench now\n"
        "       kexbench run [--t0 NS] [--out FILE] [--label L] [--hold FILE] -- CMD ARGS...\n"
        "       kexbench loop DEVICE PAGES LOOPS [--out FILE]\n"
        "       kexbench ring PAGES\n");
    std::exit(2);
}

void emit(const std::string& out, const std::string& line) {
    FILE* f = out.empty() ? stderr : std::fopen(out.c_str(), "a");
    if (!f) {
        std::fprintf(stderr, "kexbench: cannot open %s: %s\n", out.c_str(), std::strerror(errno));
        std::exit(1);
    }
    std::fprintf(f, "%s\n", line.c_str());
    if (f != stderr)
        std::fclose(f);
}

int cmd_run(int argc, char** argv) {
    uint64_t t0 = 0;
    std::string out, label, hold;
    int i = 0;
    for (; i < argc; i++) {
        std::string_view a = argv[i];
        if (a == "--t0" && i + 1 < argc)
            t0 = std::strtoull(argv[++i], nullptr, 10);
        else if (a == "--out" && i + 1 < argc)
            out = argv[++i];
        else if (a == "--label" && i + 1 < argc)
            label = argv[++i];
        else if (a == "--hold" && i + 1 < argc)
            hold = argv[++i];
        else if (a == "--") {
            i++;
            break;
        } else
            usage();
    }
    if (i >= argc)
        usage();
    while (!hold.empty() && access(hold.c_str(), F_OK) != 0)
        usleep(2000); // a tracer started apart (bpftrace PID) is attaching
    uint64_t start = now_ns();
    pid_t pid = fork();
    if (pid < 0) {
        std::perror("kexbench: fork");
        return 1;
    }
    if (pid == 0) {
        execvp(argv[i], argv + i);
        std::fprintf(stderr, "kexbench: exec %s: %s\n", argv[i], std::strerror(errno));
        _exit(127);
    }
    int st = 0;
    rusage ru{};
    while (wait4(pid, &st, 0, &ru) < 0)
        if (errno != EINTR) {
            std::perror("kexbench: wait4");
            return 1;
        }
    uint64_t end = now_ns();
    int code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    char buf[512];
    std::snprintf(buf, sizeof(buf),
                  "{\"label\":\"%s\",\"t0\":%llu,\"start\":%llu,\"startup_ns\":%lld,"
                  "\"wall_ns\":%llu,\"utime_us\":%llu,\"stime_us\":%llu,\"status\":%d}",
                  label.c_str(), (unsigned long long)t0, (unsigned long long)start,
                  t0 ? (long long)(start - t0) : -1LL, (unsigned long long)(end - start),
                  (unsigned long long)tv_us(ru.ru_utime), (unsigned long long)tv_us(ru.ru_stime),
                  code);
    emit(out, buf);
    return code;
}

int cmd_loop(int argc, char** argv) {
    if (argc < 3)
        usage();
    const char* dev = argv[0];
    uint64_t pages = std::strtoull(argv[1], nullptr, 10);
    uint64_t loops = std::strtoull(argv[2], nullptr, 10);
    std::string out;
    for (int i = 3; i < argc; i++) {
        if (std::string_view(argv[i]) == "--out" && i + 1 < argc)
            out = argv[++i];
        else
            usage();
    }
    long psz = sysconf(_SC_PAGESIZE);
    int fd = open(dev, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        std::fprintf(stderr, "kexbench: open %s: %s\n", dev, std::strerror(errno));
        return 1;
    }
    size_t len = pages * static_cast<size_t>(psz);
    uint64_t start = now_ns();
    for (uint64_t l = 0; l < loops; l++) {
        void* p = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED) {
            std::fprintf(stderr, "kexbench: mmap %llu pages: %s\n", (unsigned long long)pages,
                         std::strerror(errno));
            return 1;
        }
        auto* c = static_cast<volatile char*>(p);
        for (uint64_t pg = 0; pg < pages; pg++)
            c[pg * psz] = static_cast<char>(l + pg);
        if (munmap(p, len) != 0) {
            std::perror("kexbench: munmap");
            return 1;
        }
    }
    uint64_t wall = now_ns() - start;
    close(fd);
    char buf[256];
    std::snprintf(buf, sizeof(buf),
                  "{\"pages\":%llu,\"loops\":%llu,\"wall_ns\":%llu,\"pages_per_s\":%.0f}",
                  (unsigned long long)pages, (unsigned long long)loops, (unsigned long long)wall,
                  wall ? double(pages * loops) * 1e9 / double(wall) : 0.0);
    emit(out, buf);
    return 0;
}

int cmd_ring(int argc, char** argv) {
    if (argc != 1)
        usage();
    const unsigned pages = static_cast<unsigned>(std::strtoul(argv[0], nullptr, 10));
    const auto psz = static_cast<unsigned>(sysconf(_SC_PAGESIZE));
    if (!pages) {
        std::fprintf(stderr, "kexbench: ring: PAGES must be a positive number\n");
        return 2;
    }
    int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL));
    if (fd < 0) {
        std::perror("kexbench: ring: socket(AF_PACKET)");
        return 1;
    }
    int version = TPACKET_V2;
    // two frames a block: the block is one page, so each is a page-sized pg_vec entry
    tpacket_req req{psz, pages, psz / 2, pages * 2};
    if (setsockopt(fd, SOL_PACKET, PACKET_VERSION, &version, sizeof(version)) != 0 ||
        setsockopt(fd, SOL_PACKET, PACKET_RX_RING, &req, sizeof(req)) != 0) {
        std::fprintf(stderr, "kexbench: ring: a ring of %u pages: %s\n", pages,
                     std::strerror(errno));
        close(fd);
        return 1;
    }
    const size_t len = size_t{pages} * psz;
    void* p = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        std::fprintf(stderr, "kexbench: ring: mmap: %s\n", std::strerror(errno));
        close(fd);
        return 1;
    }
    auto* c = static_cast<volatile char*>(p);
    for (size_t pg = 0; pg < pages; pg++)
        c[pg * psz + psz - 1] = 0x5a; // the kernel wrote the frame headers
    int rc = munmap(p, len) != 0;
    if (rc)
        std::perror("kexbench: ring: munmap");
    close(fd);
    return rc;
}

} // namespace

int main(int argc, char** argv) {
    if (argc < 2)
        usage();
    std::string_view cmd = argv[1];
    if (cmd == "now") {
        std::printf("%llu\n", (unsigned long long)now_ns());
        return 0;
    }
    if (cmd == "run")
        return cmd_run(argc - 2, argv + 2);
    if (cmd == "loop")
        return cmd_loop(argc - 2, argv + 2);
    if (cmd == "ring")
        return cmd_ring(argc - 2, argv + 2);
    usage();
}
