// rig/mmap_test.cpp - the seed's rig: map PAGES pages of the kex device,
// check they read as zeros, write a pattern to every page and read it back,
// then unmap. Each phase is bracketed by a USDT probe (provider kex_rig).
//
//   $ mmap_test /dev/kex 8
//   pid: 4475
//   press a key to exercise memory write 0x7f6dcd411000
//   wrote and verified 8 pages
//   press a key to terminate
//
// --mode insert|batch|fault|pfn sets the mapping mode of the open file with
// KEX_IOC_SET_MODE before the mmap (without it, the module's default mode).
// The fresh mapping is checked to read as zeros before the first prompt,
// except in mode fault, where that read would fault every page in: there,
// and with --read-first in any mode, the zero check runs after the first
// prompt, right before the write (in mode fault the pages then come in on
// read faults; without --read-first they come in on the write, unchecked).
//
// It waits for a line on stdin at both prompts when stdin is a terminal or a
// pipe/FIFO (tests drive it through a FIFO and synchronise on the prompt
// lines, which are flushed before each wait); with --no-wait, or any other
// stdin (/dev/null, a file), it runs straight through. EOF ends a wait.
//
// Exit status: 0 done; 1 runtime failure (module not loaded, mmap refused,
// pattern mismatch); 2 usage error (bad arguments, not the kex device).
// Errors go to stderr, one line each; nothing stays mapped.

#include <fcntl.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/sdt.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>

#include "kex_uapi.h"

namespace {

constexpr int kExitRuntime = 1;
constexpr int kExitUsage = 2;

// The one fatal error type: caught in main, printed, turned into the status.
struct Fatal {
    int status;
    std::string message;
};

// Bad arguments; with_usage adds the synopsis (not for a wrong DEVICE).
[[noreturn]] void usage_error(const std::string& message, bool with_usage = true) {
    throw Fatal{kExitUsage,
                with_usage
                    ? message + " (usage: mmap_test DEVICE PAGES [--mode insert|batch|fault|pfn]"
                                " [--read-first] [--no-wait] [--hold-after-write])"
                    : message};
}

[[noreturn]] void runtime_error(const std::string& message) {
    throw Fatal{kExitRuntime, message};
}

std::string errno_text(int err) {
    return std::strerror(err);
}

std::string hex(std::uintptr_t v) {
    std::ostringstream s;
    s << "0x" << std::hex << v;
    return s.str();
}

// The kex mapping modes, indexed by enum kex_map_mode.
constexpr std::array<std::string_view, KEX_MODE_COUNT> kModeNames = {"insert", "batch", "fault",
                                                                     "pfn"};

std::string mode_name(std::uint32_t mode) {
    return mode < kModeNames.size() ? std::string(kModeNames[mode])
                                    : "mode " + std::to_string(mode);
}

struct Options {
    std::string device;
    std::string pages_arg;
    std::optional<std::uint32_t> mode; // enum kex_map_mode, if --mode was given
    bool read_first = false;
    bool no_wait = false;
    bool hold_after_write = false;
};

void print_help() {
    std::cout << "usage: mmap_test DEVICE PAGES [--mode insert|batch|fault|pfn] [--read-first]\n"
                 "                 [--no-wait] [--hold-after-write]\n"
                 "  map PAGES pages of the kex device DEVICE (e.g. /dev/kex), check they read\n"
                 "  as zeros, write and verify a pattern in every page, unmap.\n"
                 "  --mode M            map in kex mode M (ioctl KEX_IOC_SET_MODE before mmap);\n"
                 "                      default: the module's mode parameter\n"
                 "  --read-first        check the zeros after the first prompt, right before the\n"
                 "                      write (mode fault: read-fault every page, then write)\n"
                 "  --no-wait           do not wait for a line on stdin at the prompts\n"
                 "  --hold-after-write  after the write, keep the mapping until SIGINT/SIGTERM\n";
}

std::uint32_t parse_mode(std::string_view name) {
    for (std::uint32_t m = 0; m < kModeNames.size(); ++m)
        if (name == kModeNames[m])
            return m;
    usage_error("unknown --mode '" + std::string(name) +
                    "': the kex modes are insert, batch, fault and pfn",
                false);
}

Options parse_args(int argc, char** argv) {
    Options o;
    int positional = 0;
    for (int i = 1; i < argc; ++i) {
        std::string_view a = argv[i];
        if (a == "--no-wait") {
            o.no_wait = true;
        } else if (a == "--read-first") {
            o.read_first = true;
        } else if (a == "--mode") {
            if (i + 1 >= argc)
                usage_error("--mode needs a value: insert, batch, fault or pfn");
            o.mode = parse_mode(argv[++i]);
        } else if (a.rfind("--mode=", 0) == 0) {
            o.mode = parse_mode(a.substr(7));
        } else if (a == "--hold-after-write") {
            o.hold_after_write = true;
        } else if (a == "-h" || a == "--help") {
            print_help();
            std::exit(0);
        } else if (a.size() > 1 && a[0] == '-' && !(a[1] >= '0' && a[1] <= '9')) {
            usage_error("unknown option '" + std::string(a) + "'");
        } else if (positional == 0) {
            o.device = a;
            ++positional;
        } else if (positional == 1) {
            o.pages_arg = a;
            ++positional;
        } else {
            usage_error("unexpected argument '" + std::string(a) + "'");
        }
    }
    if (positional < 2)
        usage_error(positional == 0 ? "missing DEVICE and PAGES" : "missing PAGES");
    return o;
}

// A whole number from a sysfs/proc file, if it exists and holds one.
std::optional<std::uint64_t> read_number(const char* path) {
    std::ifstream f(path);
    std::uint64_t v;
    if (f >> v)
        return v;
    return std::nullopt;
}

// The first word of a sysfs file, if it exists.
std::optional<std::string> read_word(const char* path) {
    std::ifstream f(path);
    std::string v;
    if (f >> v)
        return v;
    return std::nullopt;
}

std::uint64_t parse_pages(const std::string& arg, std::size_t page_size) {
    std::uint64_t pages = 0;
    const char* end = arg.data() + arg.size();
    auto [ptr, ec] = std::from_chars(arg.data(), end, pages);
    if (!arg.empty() && arg[0] == '-')
        usage_error("PAGES must be a positive number of pages, not '" + arg + "'");
    if (ec == std::errc::result_out_of_range)
        usage_error("PAGES '" + arg + "' is far too large");
    if (ec != std::errc() || ptr != end)
        usage_error("PAGES must be a whole number of pages, not '" + arg + "'");
    if (pages == 0)
        usage_error("PAGES must be at least 1");
    if (auto max = read_number(KEX_PARAM_DIR "/max_pages"); max && pages > *max)
        usage_error("PAGES " + arg + " exceeds the kex module's max_pages " + std::to_string(*max) +
                        " (" KEX_PARAM_DIR
                        "/max_pages): ask for fewer, or reload kex with max_pages=" +
                        arg,
                    false);
    if (pages > SIZE_MAX / page_size)
        usage_error("PAGES '" + arg + "' does not fit in the address space");
    return pages;
}

// The major of the kex driver from /proc/devices, if it is loaded.
std::optional<unsigned> kex_major() {
    std::ifstream f("/proc/devices");
    std::string line;
    bool in_char = false;
    while (std::getline(f, line)) {
        if (line == "Character devices:") {
            in_char = true;
            continue;
        }
        if (line == "Block devices:")
            in_char = false;
        std::istringstream s(line);
        unsigned major;
        std::string name;
        if (in_char && (s >> major >> name) && name == KEX_DEVICE_NAME)
            return major;
    }
    return std::nullopt;
}

// Checks DEVICE is the kex char device; returns an fd open read-write.
int open_device(const std::string& path) {
    struct stat st {};
    if (stat(path.c_str(), &st) != 0) {
        int err = errno;
        if (err == ENOENT)
            usage_error(path + ": no such file; pass the kex device node, e.g. /dev/kex", false);
        runtime_error(path + ": " + errno_text(err));
    }
    if (!S_ISCHR(st.st_mode))
        usage_error(path + " is not a character device; pass the kex device node, e.g. /dev/kex",
                    false);
    auto major = kex_major();
    if (!major)
        runtime_error(
            "the kex module is not loaded (no 'kex' in /proc/devices): insmod build/module/kex.ko");
    if (::major(st.st_rdev) != *major)
        usage_error(path + " is char device " + std::to_string(::major(st.st_rdev)) + ":" +
                        std::to_string(::minor(st.st_rdev)) + ", not kex (major " +
                        std::to_string(*major) + "); make one with: mknod NAME c " +
                        std::to_string(*major) + " 0",
                    false);
    int fd = open(path.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        int err = errno;
        if (err == ENXIO)
            usage_error(path + ": no such kex device (minor " +
                            std::to_string(::minor(st.st_rdev)) + "); kex has minor 0 only",
                        false);
        runtime_error("cannot open " + path + " read-write: " + errno_text(err));
    }
    return fd;
}

// Sets the file's mapping mode if one was asked for; returns the mode the
// mmap will use (insert for a kex without modes, which knows no ioctl).
std::uint32_t set_mode(int fd, const std::optional<std::uint32_t>& want) {
    if (want) {
        std::uint32_t m = *want;
        if (ioctl(fd, KEX_IOC_SET_MODE, &m) != 0) {
            int err = errno;
            runtime_error("cannot set mode " + mode_name(m) +
                          " (ioctl KEX_IOC_SET_MODE): " + errno_text(err) +
                          (err == ENOTTY ? " (this kex module has no mapping modes; reload a newer "
                                           "build/module/kex.ko)"
                                         : ""));
        }
    }
    std::uint32_t mode = KEX_MODE_INSERT;
    if (ioctl(fd, KEX_IOC_GET_MODE, &mode) != 0) {
        int err = errno;
        if (err != ENOTTY)
            runtime_error("cannot read the mapping mode (ioctl KEX_IOC_GET_MODE): " +
                          errno_text(err));
        mode = KEX_MODE_INSERT;
    }
    return mode;
}

std::string mmap_hint(int err, std::uint32_t mode) {
    auto policy = read_word(KEX_PARAM_DIR "/ref_policy");
    switch (err) {
    case E2BIG:
        return "more pages than the module's max_pages";
    case EINVAL:
        if ((mode == KEX_MODE_FAULT || mode == KEX_MODE_PFN) && policy && *policy == "drop")
            return "mode " + mode_name(mode) + " needs the kex module's ref_policy=keep (" +
                   KEX_PARAM_DIR "/ref_policy is drop)";
        return "the request was refused; dmesg has a 'kex: mmap rejected' line saying why";
    case ENOMEM:
        return "out of memory for the pages; try fewer";
    case ENODEV:
        return "the device does not support mmap: is it kex?";
    default:
        return "see dmesg for a 'kex:' line";
    }
}

// A MAP_SHARED mapping of the device, unmapped on scope exit (error paths
// included) or explicitly by unmap(), which fires the munmap probes.
class Mapping {
  public:
    Mapping(int fd, std::uint64_t pages, std::size_t page_size, std::uint32_t mode)
        : pages_(pages), len_(pages * page_size) {
        DTRACE_PROBE1(kex_rig, mmap_begin, pages_);
        void* p = mmap(nullptr, len_, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED) {
            int err = errno;
            runtime_error("mmap of " + std::to_string(pages) + " pages failed: " + errno_text(err) +
                          " (" + mmap_hint(err, mode) + ")");
        }
        addr_ = static_cast<std::uint64_t*>(p);
        DTRACE_PROBE2(kex_rig, mmap_end, address(), pages_);
    }
    Mapping(const Mapping&) = delete;
    Mapping& operator=(const Mapping&) = delete;
    ~Mapping() {
        if (addr_)
            munmap(addr_, len_);
    }

    void unmap() {
        std::uintptr_t a = address();
        DTRACE_PROBE2(kex_rig, munmap_begin, a, pages_);
        int rc = munmap(std::exchange(addr_, nullptr), len_);
        int err = errno;
        DTRACE_PROBE2(kex_rig, munmap_end, a, pages_);
        if (rc != 0)
            runtime_error("munmap failed: " + errno_text(err));
    }

    std::uintptr_t address() const { return reinterpret_cast<std::uintptr_t>(addr_); }
    std::uint64_t* words() const { return addr_; }
    std::size_t word_count() const { return len_ / sizeof(std::uint64_t); }
    std::uint64_t pages() const { return pages_; }

  private:
    std::uint64_t pages_;
    std::size_t len_;
    std::uint64_t* addr_ = nullptr;
};

// Distinct for every 8-byte word of every page, and per process.
std::uint64_t pattern(std::uint64_t pid, std::size_t word, std::size_t words_per_page) {
    std::uint64_t page = word / words_per_page;
    return 0x6b65780000000000ULL ^ (pid << 32) ^ (page << 12) ^ (word % words_per_page);
}

// A fresh mapping must read as zeros: anything else discloses kernel data.
void check_zeros(const Mapping& m, std::size_t words_per_page) {
    const std::uint64_t* w = m.words();
    for (std::size_t i = 0; i < m.word_count(); ++i) {
        if (w[i] != 0)
            runtime_error("fresh mapping is not zeroed: page " +
                          std::to_string(i / words_per_page) + " word " +
                          std::to_string(i % words_per_page) + " reads " + hex(w[i]) +
                          " (kernel memory disclosed to user space)");
    }
}

void write_and_verify(Mapping& m, std::uint64_t pid, std::size_t words_per_page) {
    DTRACE_PROBE2(kex_rig, write_begin, m.address(), m.pages());
    std::uint64_t* w = m.words();
    for (std::size_t i = 0; i < m.word_count(); ++i)
        w[i] = pattern(pid, i, words_per_page);
    DTRACE_PROBE2(kex_rig, write_end, m.address(), m.pages());
    for (std::size_t i = 0; i < m.word_count(); ++i) {
        std::uint64_t want = pattern(pid, i, words_per_page);
        if (w[i] != want)
            runtime_error("page " + std::to_string(i / words_per_page) + " word " +
                          std::to_string(i % words_per_page) + " reads " + hex(w[i]) + ", wrote " +
                          hex(want));
    }
}

// Wait at a prompt only when someone can answer: a terminal or a pipe/FIFO.
bool stdin_interactive() {
    if (isatty(STDIN_FILENO))
        return true;
    struct stat st {};
    return fstat(STDIN_FILENO, &st) == 0 && S_ISFIFO(st.st_mode);
}

void prompt(const std::string& text, bool wait) {
    std::cout << text << std::endl; // flushed: tests synchronise on it
    if (wait) {
        std::string line;
        std::getline(std::cin, line); // EOF ends the wait too
    }
}

// --hold-after-write: keep the mapping until SIGINT, SIGTERM or SIGHUP.
void hold(const Mapping& m) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    sigprocmask(SIG_BLOCK, &set, nullptr);
    std::cout << "holding the mapping at " << hex(m.address()) << " until SIGINT or SIGTERM"
              << std::endl;
    int sig = 0;
    sigwait(&set, &sig);
}

int run(const Options& o) {
    long ps = sysconf(_SC_PAGESIZE);
    std::size_t page_size = ps > 0 ? static_cast<std::size_t>(ps) : 4096;
    std::uint64_t pages = parse_pages(o.pages_arg, page_size);
    int fd = open_device(o.device);
    bool wait = !o.no_wait && stdin_interactive();
    std::uint64_t pid = static_cast<std::uint64_t>(getpid());
    std::size_t words_per_page = page_size / sizeof(std::uint64_t);

    std::uint32_t mode = set_mode(fd, o.mode);
    // Mode fault maps nothing at mmap: reading now would fault every page in.
    bool zeros_after_prompt = o.read_first || mode == KEX_MODE_FAULT;

    std::cout << "pid: " << pid << std::endl;
    Mapping m(fd, pages, page_size, mode);
    close(fd); // the mapping keeps the file open
    if (!zeros_after_prompt)
        check_zeros(m, words_per_page);

    prompt("press a key to exercise memory write " + hex(m.address()), wait);
    if (o.read_first)
        check_zeros(m, words_per_page);
    write_and_verify(m, pid, words_per_page);
    std::cout << "wrote and verified " << pages << " pages" << std::endl;
    if (o.hold_after_write)
        hold(m);
    prompt("press a key to terminate", wait);
    m.unmap();
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    try {
        return run(parse_args(argc, argv));
    } catch (const Fatal& f) {
        std::cout.flush();
        std::cerr << "mmap_test: " << f.message << std::endl;
        return f.status;
    }
}
