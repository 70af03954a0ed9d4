// text_file.cpp - see text_file.h.
#include "text_file.h"

#include <cerrno>
#include <fcntl.h>
#include <unistd.h>

namespace kextrace {

std::optional<std::string> read_text_file(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return std::nullopt;
    std::string text;
    char buf[16384];
    ssize_t n;
    while ((n = ::read(fd, buf, sizeof(buf))) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            const int err = errno;
            ::close(fd);
            errno = err;
            return std::nullopt;
        }
        text.append(buf, static_cast<std::size_t>(n));
    }
    ::close(fd);
    return text;
}

} // namespace kextrace
