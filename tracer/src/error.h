// error.h - kextrace's error policy.
//
// Recoverable errors are values: Result<T> holds a T or an Error (a one-line
// message a user can act on). Exactly one exception type exists, FatalError,
// for conditions that end the run; main() catches it, prints its message and
// exits with its status. Nothing else throws on purpose.
#pragma once

#include <cstring>
#include <stdexcept>
#include <string>
#include <utility>
#include <variant>

namespace kextrace {

struct Error {
    std::string message;
};

// A user-facing error that ends the run: "kextrace: error: <what>".
class FatalError : public std::runtime_error {
  public:
    explicit FatalError(const std::string& what, int status = 1)
        : std::runtime_error(what), status_(status) {}
    int status() const { return status_; }

  private:
    int status_;
};

template <class T> class Result {
  public:
    Result(T value) : v_(std::move(value)) {}
    Result(Error err) : v_(std::move(err)) {}

    bool ok() const { return std::holds_alternative<T>(v_); }
    explicit operator bool() const { return ok(); }
    T& value() { return std::get<T>(v_); }
    const T& value() const { return std::get<T>(v_); }
    T& operator*() { return value(); }
    const T& operator*() const { return value(); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }
    const Error& error() const { return std::get<Error>(v_); }
    // The value, or a FatalError with the message (for main-level wiring).
    T take_or_die(const std::string& context = {}) && {
        if (!ok())
            throw FatalError(context.empty() ? error().message : context + ": " + error().message);
        return std::move(value());
    }
    // The value, or a FatalError with the message and exit status.
    T take_or_die_with(int status) && {
        if (!ok())
            throw FatalError(error().message, status);
        return std::move(value());
    }

  private:
    std::variant<T, Error> v_;
};

// Result<void>
struct Ok {};
using Status = Result<Ok>;

// The text of an errno value, of either sign (libbpf returns -errno).
inline std::string errstr(int err) {
    return std::strerror(err < 0 ? -err : err);
}

} // namespace kextrace
