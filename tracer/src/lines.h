// lines.h - the lines of a text, for the /proc, kallsyms and tracefs parsers:
//   for (std::string_view line : Lines(text)) ...
// Lines are split at '\n' and come without it; a last line without a newline
// counts too, an empty text has none.
#pragma once

#include <cstddef>
#include <iterator>
#include <string_view>

namespace kextrace {

class Lines {
  public:
    explicit Lines(std::string_view text) : text_(text) {}

    class iterator {
      public:
        using value_type = std::string_view;
        using difference_type = std::ptrdiff_t;

        iterator() = default;
        explicit iterator(std::string_view text) : text_(text) { next(); }
        std::string_view operator*() const { return line_; }
        iterator& operator++() {
            next();
            return *this;
        }
        void operator++(int) { next(); }
        bool operator==(std::default_sentinel_t) const { return done_; }

      private:
        void next() {
            if (pos_ >= text_.size()) {
                done_ = true;
                return;
            }
            std::size_t nl = text_.find('\n', pos_);
            line_ = text_.substr(pos_, nl == std::string_view::npos ? nl : nl - pos_);
            pos_ = nl == std::string_view::npos ? text_.size() : nl + 1;
        }
        std::string_view text_, line_;
        std::size_t pos_ = 0;
        bool done_ = false;
    };

    iterator begin() const { return iterator(text_); }
    std::default_sentinel_t end() const { return {}; }

  private:
    std::string_view text_;
};

} // namespace kextrace
