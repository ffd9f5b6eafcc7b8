#include <sluice/proto/http1.hpp>

#include <algorithm>
#include <fmt/format.h>

namespace sluice::proto::http1 {
namespace {

constexpr std::size_t npos = std::string_view::npos;

bool is_tchar(unsigned char c) noexcept {
  if (c >= '0' && c <= '9') return true;
  if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != npos;
}

bool is_token(std::string_view s) noexcept {
  if (s.empty()) return false;
  for (unsigned char c : s)
    if (!is_tchar(c)) return false;
  return true;
}

// field-value characters: VCHAR, obs-text, SP, HTAB.
bool is_value_char(unsigned char c) noexcept {
  return c == '\t' || c == ' ' || (c > 0x20 && c != 0x7f);
}

char lower(char c) noexcept { return (c >= 'A' && c <= 'Z') ? char(c + 32) : c; }

bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (lower(a[i]) != lower(b[i])) return false;
  return true;
}

std::string_view trim_ows(std::string_view s) noexcept {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
    s.remove_suffix(1);
  return s;
}

// Calls fn(element) for each comma-separated element of every field named `name`.
template <class F> void for_each_element(const fields& f, std::string_view name, F fn) {
  for (const auto& fl : f.all()) {
    if (!iequals(fl.name, name)) continue;
    std::string_view v = fl.value;
    while (true) {
      const auto comma = v.find(',');
      fn(trim_ows(v.substr(0, comma)));
      if (comma == npos) break;
      v.remove_prefix(comma + 1);
    }
  }
}

std::string_view as_text(std::span<const std::byte> b) noexcept {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

// Parses "name: value" (the CRLF already removed) into `out`.
std::optional<std::string> parse_field_line(std::string_view line, fields& out) {
  if (!line.empty() && (line.front() == ' ' || line.front() == '\t'))
    return "obsolete line folding (a field line starting with whitespace)";
  const auto colon = line.find(':');
  if (colon == npos) return fmt::format("field line without a colon: \"{:.40}\"", line);
  const std::string_view name = line.substr(0, colon);
  if (!name.empty() && (name.back() == ' ' || name.back() == '\t'))
    return fmt::format("whitespace between the field name \"{}\" and its colon", trim_ows(name));
  if (!is_token(name)) return fmt::format("invalid field name \"{:.40}\"", name);
  const std::string_view value = trim_ows(line.substr(colon + 1));
  for (unsigned char c : value)
    if (!is_value_char(c))
      return fmt::format("invalid character 0x{:02x} in the value of \"{}\"", unsigned(c), name);
  out.add(std::string(name), std::string(value));
  return std::nullopt;
}

} // namespace

const std::string* fields::find(std::string_view name) const noexcept {
  for (const auto& f : list_)
    if (iequals(f.name, name)) return &f.value;
  return nullptr;
}

std::size_t fields::count(std::string_view name) const noexcept {
  return static_cast<std::size_t>(std::count_if(
      list_.begin(), list_.end(), [&](const field& f) { return iequals(f.name, name); }));
}

parser::parser(role r, limits l) : role_(r), limits_(l) {}

void parser::receive_data(std::span<const std::byte> bytes) {
  if (bytes.empty()) return;
  if (borrowing_) end_borrow();
  if (pos_ != 0) { // drop consumed bytes; spans from earlier events end here
    in_.erase(in_.begin(), in_.begin() + static_cast<std::ptrdiff_t>(pos_));
    pos_ = 0;
  }
  in_.insert(in_.end(), bytes.begin(), bytes.end());
  view_ = in_;
}

void parser::receive_borrowed(std::span<const std::byte> bytes) {
  if (bytes.empty()) return;
  if (borrowing_ || pos_ != view_.size()) { // something unconsumed: continue it by copying
    receive_data(bytes);
    return;
  }
  in_.clear();
  pos_ = 0;
  view_ = bytes;
  borrowing_ = true;
}

void parser::end_borrow() {
  // Offsets inside a partial head (scan_rel_, line_rel_) are relative to pos_, so they
  // survive the move.
  in_.assign(view_.begin() + static_cast<std::ptrdiff_t>(pos_), view_.end());
  if (in_.capacity() > 4 * in_.size() + 1024) in_.shrink_to_fit(); // an idle connection
  pos_ = 0;
  view_ = in_;
  borrowing_ = false;
}

event parser::next_event() {
  event ev = next_event_here();
  if (borrowing_ && std::holds_alternative<need_data>(ev)) end_borrow();
  return ev;
}

event parser::fail(int status, std::string message) {
  state_ = state::failed;
  return parse_error{status, std::move(message)};
}

std::size_t parser::find_head_end(bool has_start_line, std::optional<parse_error>* error) {
  // Lines end in CRLF. The scan resumes where the previous call stopped (offsets are
  // kept relative to pos_, which survives the buffer's compaction), so a head fed
  // byte by byte is still parsed in linear time.
  const char* data = reinterpret_cast<const char*>(view_.data());
  const std::size_t end = view_.size();
  std::size_t i = pos_ + scan_rel_;
  std::size_t line_start = pos_ + line_rel_;
  auto reset = [&] { scan_rel_ = line_rel_ = lines_ = 0; };
  for (; i < end; ++i) {
    const char c = data[i];
    if (c == '\r') {
      if (i + 1 == end) break; // need the next byte
      if (data[i + 1] != '\n') {
        reset();
        *error = parse_error{400, "bare CR in the message head"};
        return npos;
      }
      continue;
    }
    if (c != '\n') continue;
    if (i == line_start || data[i - 1] != '\r') {
      reset();
      *error = parse_error{400, "bare LF in the message head (CRLF required)"};
      return npos;
    }
    const std::size_t len = i - 1 - line_start; // without CRLF
    if (len == 0) {
      if (lines_ == 0 && has_start_line) { // empty lines before a request line: skipped
        pos_ = i + 1;
        line_start = pos_;
        continue;
      }
      reset();
      return i + 1;
    }
    ++lines_;
    if (lines_ == 1 && has_start_line && len > limits_.max_request_line) {
      reset();
      *error = parse_error{role_ == role::server ? 414 : 400,
                           fmt::format("request line of {} bytes exceeds the limit of {}", len,
                                       limits_.max_request_line)};
      return npos;
    }
    if (lines_ - (has_start_line ? 1 : 0) > limits_.max_header_count) {
      reset();
      *error =
          parse_error{431, fmt::format("more than {} header fields", limits_.max_header_count)};
      return npos;
    }
    line_start = i + 1;
  }
  scan_rel_ = i - pos_;
  line_rel_ = line_start - pos_;
  // Incomplete: enforce the request-line limit on what is there already.
  if (has_start_line && lines_ == 0 && end - line_start > limits_.max_request_line) {
    reset();
    *error = parse_error{
        role_ == role::server ? 414 : 400,
        fmt::format("request line exceeds the limit of {} bytes", limits_.max_request_line)};
  }
  return npos;
}

event parser::next_event_here() {
  switch (state_) {

  case state::failed: return parse_error{400, "the connection already failed"};
  case state::head: return parse_head();
  case state::body_length: {
    const std::size_t avail = view_.size() - pos_;
    if (avail == 0) {
      if (eof_)
        return fail(400, fmt::format("end of stream with {} body bytes missing", remaining_));
      return need_data{};
    }
    const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(avail, remaining_));
    const std::span<const std::byte> data(view_.data() + pos_, n);
    pos_ += n;
    remaining_ -= n;
    if (remaining_ == 0) state_ = state::end;
    return body_data{data};
  }
  case state::chunk_size: return parse_chunk_size();
  case state::chunk_data: {
    const std::size_t avail = view_.size() - pos_;
    if (avail == 0) {
      if (eof_) return fail(400, "end of stream inside a chunk");
      return need_data{};
    }
    const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(avail, remaining_));
    const std::span<const std::byte> data(view_.data() + pos_, n);
    pos_ += n;
    remaining_ -= n;
    if (remaining_ == 0) state_ = state::chunk_crlf;
    return body_data{data};
  }
  case state::chunk_crlf: {
    if (view_.size() - pos_ < 2) {
      if (eof_) return fail(400, "end of stream after chunk data");
      return need_data{};
    }
    if (view_[pos_] != std::byte{'\r'} || view_[pos_ + 1] != std::byte{'\n'})
      return fail(400, "chunk data not followed by CRLF");
    pos_ += 2;
    state_ = state::chunk_size;
    return parse_chunk_size();
  }
  case state::trailers: return parse_trailers();
  case state::end: return finish_message();
  case state::body_until_close: {
    const std::size_t avail = view_.size() - pos_;
    if (avail == 0) {
      if (eof_) return finish_message();
      return need_data{};
    }
    body_total_ += avail;
    if (body_total_ > limits_.max_body)
      return fail(413, fmt::format("body exceeds the limit of {} bytes", limits_.max_body));
    const std::span<const std::byte> data(view_.data() + pos_, avail);
    pos_ += avail;
    return body_data{data};
  }
  }
  return need_data{};
}

event parser::finish_message(fields trailers) {
  state_ = state::head;
  remaining_ = 0;
  body_total_ = 0;
  return message_end{std::move(trailers)};
}

event parser::parse_head() {
  std::optional<parse_error> err;
  const std::size_t head_end = find_head_end(true, &err);
  if (err) return fail(err->status, std::move(err->message));
  if (head_end == npos) {
    const std::size_t avail = view_.size() - pos_;
    if (avail > limits_.max_request_line + limits_.max_header_bytes + 2)
      return fail(431, fmt::format("header section exceeds the limit of {} bytes",
                                   limits_.max_header_bytes));
    if (eof_) {
      if (avail == 0) return end_of_input{};
      return fail(400, "end of stream inside a message head");
    }
    return need_data{};
  }
  const std::string_view head = as_text(view_.subspan(pos_, head_end - pos_));
  pos_ = head_end;

  const auto first_end = head.find("\r\n");
  const std::string_view start = head.substr(0, first_end);
  std::string_view rest = head.substr(first_end + 2);
  if (rest.size() - 2 > limits_.max_header_bytes)
    return fail(431, fmt::format("header section of {} bytes exceeds the limit of {}",
                                 rest.size() - 2, limits_.max_header_bytes));
  fields headers;
  while (rest.size() > 2) {
    const auto e = rest.find("\r\n");
    if (auto problem = parse_field_line(rest.substr(0, e), headers)) return fail(400, *problem);
    rest.remove_prefix(e + 2);
  }

  // Version and Connection rules, shared by both roles.
  auto parse_version = [](std::string_view v, int& minor) -> int {
    if (v.size() != 8 || v.substr(0, 5) != "HTTP/" || v[6] != '.' || v[5] < '0' || v[5] > '9' ||
        v[7] < '0' || v[7] > '9')
      return 400;
    if (v[5] != '1') return 505;
    minor = v[7] - '0';
    return 0;
  };
  auto keep_alive_of = [&](int minor) {
    bool close = false, keep = false;
    for_each_element(headers, "connection", [&](std::string_view t) {
      close = close || iequals(t, "close");
      keep = keep || iequals(t, "keep-alive");
    });
    return !close && (minor >= 1 || keep);
  };

  // Body framing: Transfer-Encoding and Content-Length.
  bool chunked = false;
  bool has_te = headers.count("transfer-encoding") != 0;
  std::optional<std::uint64_t> length;
  if (has_te) {
    std::vector<std::string_view> codings;
    for_each_element(headers, "transfer-encoding",
                     [&](std::string_view t) { codings.push_back(t); });
    if (codings.empty() || !iequals(codings.back(), "chunked"))
      return fail(400, "Transfer-Encoding whose final coding is not chunked");
    if (codings.size() != 1)
      return fail(501, fmt::format("unsupported transfer coding \"{}\"", codings.front()));
    chunked = true;
  }
  if (headers.count("content-length") != 0) {
    if (has_te) return fail(400, "both Content-Length and Transfer-Encoding");
    bool bad = false;
    for_each_element(headers, "content-length", [&](std::string_view v) {
      if (bad) return;
      if (v.empty() || v.size() > 19 ||
          !std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        bad = true;
        return;
      }
      std::uint64_t n = 0;
      for (char c : v)
        n = n * 10 + std::uint64_t(c - '0');
      if (length && *length != n) bad = true;
      length = n;
    });
    if (bad) return fail(400, "invalid or differing Content-Length values");
  }

  if (role_ == role::server) {
    request r;
    // request-line = method SP request-target SP HTTP-version
    const auto sp1 = start.find(' ');
    const auto sp2 = sp1 == npos ? npos : start.find(' ', sp1 + 1);
    if (sp1 == npos || sp2 == npos || start.find(' ', sp2 + 1) != npos)
      return fail(400, fmt::format("malformed request line \"{:.60}\"", start));
    r.method = std::string(start.substr(0, sp1));
    r.target = std::string(start.substr(sp1 + 1, sp2 - sp1 - 1));
    if (!is_token(r.method)) return fail(400, fmt::format("invalid method \"{:.20}\"", r.method));
    if (r.target.empty() || !std::all_of(r.target.begin(), r.target.end(), [](char c) {
          return static_cast<unsigned char>(c) > 0x20 && c != 0x7f;
        }))
      return fail(400, "invalid request target");
    if (int st = parse_version(start.substr(sp2 + 1), r.minor_version); st != 0)
      return fail(st, fmt::format("unsupported HTTP version \"{:.20}\"", start.substr(sp2 + 1)));
    if (chunked && r.minor_version == 0)
      return fail(400, "Transfer-Encoding in an HTTP/1.0 request");
    if (r.minor_version >= 1 && headers.count("host") != 1)
      return fail(400, headers.count("host") == 0 ? "missing Host" : "more than one Host");
    if (const std::string* e = headers.find("expect")) {
      if (!iequals(*e, "100-continue"))
        return fail(417, fmt::format("unsupported Expect \"{:.40}\"", *e));
      r.expect_continue = r.minor_version >= 1;
    }
    if (length && *length > limits_.max_body)
      return fail(
          413, fmt::format("Content-Length {} exceeds the limit of {}", *length, limits_.max_body));
    r.keep_alive = keep_alive_of(r.minor_version);
    r.chunked = chunked;
    r.content_length = length.value_or(0);
    r.headers = std::move(headers);
    if (chunked)
      state_ = state::chunk_size;
    else if (r.content_length != 0) {
      state_ = state::body_length;
      remaining_ = r.content_length;
    } else
      state_ = state::end; // no body: message_end next
    return request_head{std::move(r)};
  }

  response_header r;
  // status-line = HTTP-version SP status-code SP [reason-phrase]
  const auto sp1 = start.find(' ');
  if (sp1 == npos) return fail(400, "malformed status line");
  if (int st = parse_version(start.substr(0, sp1), r.minor_version); st != 0)
    return fail(st, "unsupported HTTP version in the status line");
  const std::string_view code = start.substr(sp1 + 1, 3);
  if (code.size() != 3 ||
      !std::all_of(code.begin(), code.end(), [](char c) { return c >= '0' && c <= '9'; }) ||
      (start.size() > sp1 + 4 && start[sp1 + 4] != ' '))
    return fail(400, "malformed status code");
  r.status = (code[0] - '0') * 100 + (code[1] - '0') * 10 + (code[2] - '0');
  if (start.size() > sp1 + 5) r.reason = std::string(start.substr(sp1 + 5));
  r.keep_alive = keep_alive_of(r.minor_version);
  r.headers = std::move(headers);
  const bool no_body =
      iequals(method_, "HEAD") || r.status / 100 == 1 || r.status == 204 || r.status == 304;
  if (no_body) {
    state_ = state::end;
  } else if (chunked) {
    state_ = state::chunk_size;
  } else if (length) {
    if (*length > limits_.max_body)
      return fail(
          413, fmt::format("Content-Length {} exceeds the limit of {}", *length, limits_.max_body));
    if (*length == 0)
      state_ = state::end;
    else
      state_ = state::body_length, remaining_ = *length;
  } else {
    state_ = state::body_until_close;
    r.keep_alive = false;
  }
  return response_head{std::move(r)};
}

namespace {
// RFC 9112 §7.1.1: chunk-ext = *( BWS ";" BWS name [ BWS "=" BWS value ] ), the name a
// token, the value a token or a quoted-string. nullptr if `ext` is one, else why not.
const char* chunk_ext_error(std::string_view ext) noexcept {
  std::size_t i = 0;
  const auto skip_ws = [&] {
    while (i < ext.size() && (ext[i] == ' ' || ext[i] == '\t'))
      ++i;
  };
  const auto token = [&] {
    const std::size_t from = i;
    while (i < ext.size() && is_tchar(static_cast<unsigned char>(ext[i])))
      ++i;
    return i > from;
  };
  for (;;) {
    skip_ws();
    if (i == ext.size()) return nullptr;
    if (ext[i] != ';') return "invalid chunk extension";
    ++i;
    skip_ws();
    if (!token()) return "chunk extension with no name";
    skip_ws();
    if (i == ext.size() || ext[i] != '=') continue;
    ++i;
    skip_ws();
    if (i < ext.size() && ext[i] == '"') {
      for (++i;; ++i) {
        if (i == ext.size()) return "unterminated quoted string in a chunk extension";
        const auto c = static_cast<unsigned char>(ext[i]);
        if (c == '"') break;
        if (c == '\\') { // quoted-pair: HTAB, SP, VCHAR or obs-text
          if (++i == ext.size()) return "unterminated quoted string in a chunk extension";
          const auto q = static_cast<unsigned char>(ext[i]);
          if (q != '\t' && q < 0x20) return "invalid quoted-pair in a chunk extension";
          if (q == 0x7f) return "invalid quoted-pair in a chunk extension";
          continue;
        }
        if (c != '\t' && (c < 0x20 || c == 0x7f)) return "invalid character in a chunk extension";
      }
      ++i; // past the closing quote
    } else if (!token()) {
      return "chunk extension with no value after \"=\"";
    }
  }
}
} // namespace

event parser::parse_chunk_size() {

  // chunk-size [ chunk-ext ] CRLF, with chunk-size = 1*HEXDIG
  const char* data = reinterpret_cast<const char*>(view_.data());
  const std::size_t avail = view_.size() - pos_;
  const std::string_view window(data + pos_, std::min(avail, limits_.max_chunk_line + 2));
  const auto lf = window.find('\n');
  if (lf == npos) {
    if (window.size() >= limits_.max_chunk_line + 2)
      return fail(400, fmt::format("chunk-size line longer than {} bytes", limits_.max_chunk_line));
    if (eof_) return fail(400, "end of stream inside a chunk-size line");
    return need_data{};
  }
  if (lf == 0 || window[lf - 1] != '\r') return fail(400, "bare LF in a chunk-size line");
  const std::string_view line = window.substr(0, lf - 1);
  std::size_t digits = 0;
  std::uint64_t size = 0;
  while (digits < line.size()) {
    const char c = line[digits];
    int v = -1;
    if (c >= '0' && c <= '9')
      v = c - '0';
    else if (lower(c) >= 'a' && lower(c) <= 'f')
      v = lower(c) - 'a' + 10;
    if (v < 0) break;
    if (digits == 16) return fail(400, "chunk size overflows 64 bits");
    size = size * 16 + std::uint64_t(v);
    ++digits;
  }
  if (digits == 0) return fail(400, fmt::format("invalid chunk size \"{:.20}\"", line));
  if (digits < line.size()) {
    const std::string_view ext = line.substr(digits);
    if (ext.find_first_not_of(" \t") == npos || ext[ext.find_first_not_of(" \t")] != ';')
      return fail(400, fmt::format("invalid chunk size \"{:.20}\"", line));
    if (const char* why = chunk_ext_error(ext)) return fail(400, why);
  }

  if (size > limits_.max_body || body_total_ + size > limits_.max_body)
    return fail(413, fmt::format("chunked body exceeds the limit of {} bytes", limits_.max_body));
  pos_ += lf + 1;
  body_total_ += size;
  if (size == 0) {
    state_ = state::trailers;
    return parse_trailers();
  }
  remaining_ = size;
  state_ = state::chunk_data;
  return next_event();
}

event parser::parse_trailers() {
  std::optional<parse_error> err;
  const std::size_t end = find_head_end(false, &err);
  if (err) return fail(err->status, std::move(err->message));
  if (end == npos) {
    if (view_.size() - pos_ > limits_.max_header_bytes + 2)
      return fail(431, fmt::format("trailer section exceeds the limit of {} bytes",
                                   limits_.max_header_bytes));
    if (eof_) return fail(400, "end of stream inside the trailer section");
    return need_data{};
  }
  std::string_view rest = as_text(view_.subspan(pos_, end - pos_));
  pos_ = end;
  fields trailers;
  while (rest.size() > 2) {
    const auto e = rest.find("\r\n");
    if (auto problem = parse_field_line(rest.substr(0, e), trailers)) return fail(400, *problem);
    rest.remove_prefix(e + 2);
  }
  return finish_message(std::move(trailers));
}

// --- serializer -------------------------------------------------------------------

std::string_view reason_phrase(int status) noexcept {
  switch (status) {
  case 100: return "Continue";
  case 101: return "Switching Protocols";
  case 200: return "OK";
  case 201: return "Created";
  case 204: return "No Content";
  case 301: return "Moved Permanently";
  case 302: return "Found";
  case 304: return "Not Modified";
  case 400: return "Bad Request";
  case 403: return "Forbidden";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 408: return "Request Timeout";
  case 411: return "Length Required";
  case 413: return "Content Too Large";
  case 414: return "URI Too Long";
  case 417: return "Expectation Failed";
  case 426: return "Upgrade Required";
  case 431: return "Request Header Fields Too Large";
  case 500: return "Internal Server Error";
  case 501: return "Not Implemented";
  case 503: return "Service Unavailable";
  case 505: return "HTTP Version Not Supported";
  default: return "Unknown";
  }
}

namespace {

bool framing_field(const field& f);

// Writes the fields, leaving out the framing ones (Content-Length, Transfer-Encoding:
// the serializer writes its own) when `skip_framing`.
void put_fields(const fields& f, std::string& out, bool skip_framing = false) {
  for (const auto& fl : f.all()) {
    if (skip_framing && framing_field(fl)) continue;
    if (!is_token(fl.name))
      throw local_error(fmt::format("http1: invalid field name \"{:.40}\"", fl.name));
    for (unsigned char c : fl.value)
      if (!is_value_char(c))
        throw local_error(
            fmt::format("http1: character 0x{:02x} in the value of \"{}\" would split "
                        "the message",
                        unsigned(c), fl.name));
    out += fl.name;
    out += ": ";
    out += fl.value;
    out += "\r\n";
  }
}

bool framing_field(const field& f) {
  return iequals(f.name, "content-length") || iequals(f.name, "transfer-encoding");
}

void put_status_line(const response_header& head, std::string& out) {
  if (head.status < 100 || head.status > 999) throw local_error("http1: status code out of range");
  const std::string_view reason = head.reason.empty() ? reason_phrase(head.status) : head.reason;
  for (unsigned char c : reason)
    if (!is_value_char(c)) throw local_error("http1: invalid character in the reason phrase");
  if (head.minor_version != 0 && head.minor_version != 1)
    throw local_error("http1: only HTTP/1.0 and HTTP/1.1 responses are written");
  const char line[] = {'H',
                       'T',
                       'T',
                       'P',
                       '/',
                       '1',
                       '.',
                       static_cast<char>('0' + head.minor_version),
                       ' ',
                       static_cast<char>('0' + head.status / 100),
                       static_cast<char>('0' + head.status / 10 % 10),
                       static_cast<char>('0' + head.status % 10),
                       ' '};
  out.append(line, sizeof line);
  out += reason;
  out += "\r\n";
}

} // namespace

void serialize_head(const response_header& head, std::optional<std::uint64_t> content_length,
                    std::string& out, std::string_view date) {
  put_status_line(head, out);
  put_fields(head.headers, out, true);
  if (!date.empty() && !head.headers.find("date")) {
    out += "Date: ";
    out += date;
    out += "\r\n";
  }
  const bool no_body = head.status / 100 == 1 || head.status == 204 || head.status == 304;
  if (!no_body && content_length) {
    out += "Content-Length: ";
    char digits[24];
    const auto end = fmt::format_to(digits, "{}", *content_length);
    out.append(digits, end);
    out += "\r\n";
  } else if (!no_body) {
    out += "Transfer-Encoding: chunked\r\n";
  }
  if (!head.keep_alive && !head.headers.find("connection")) out += "Connection: close\r\n";
  out += "\r\n";
}

void serialize(const response_header& head, std::string_view body, std::string& out,
               std::string_view date) {
  serialize_head(head, body.size(), out, date);
  const bool no_body = head.status / 100 == 1 || head.status == 204 || head.status == 304;
  if (!no_body) out += body;
}

void serialize(const request& head, std::string_view body, std::string& out) {
  if (!is_token(head.method)) throw local_error("http1: invalid method");
  for (unsigned char c : head.target)
    if (c <= 0x20 || c == 0x7f) throw local_error("http1: invalid request target");
  out += fmt::format("{} {} HTTP/1.{}\r\n", head.method, head.target, head.minor_version);
  put_fields(head.headers, out, true);
  if (!body.empty()) out += fmt::format("Content-Length: {}\r\n", body.size());
  if (!head.keep_alive && !head.headers.find("connection")) out += "Connection: close\r\n";
  out += "\r\n";
  out += body;
}

void serialize_chunked_head(const response_header& head, std::string& out, std::string_view date) {
  serialize_head(head, std::nullopt, out, date);
}

void serialize_chunk_size(std::size_t size, std::string& out) {
  char digits[24];
  const auto end = fmt::format_to(digits, "{:x}\r\n", size);
  out.append(digits, end);
}

void serialize_chunk(std::string_view data, std::string& out) {
  if (data.empty()) return; // an empty chunk would end the body
  serialize_chunk_size(data.size(), out);
  out += data;
  out += "\r\n";
}

void serialize_last_chunk(const fields& trailers, std::string& out) {
  out += "0\r\n";
  put_fields(trailers, out);
  out += "\r\n";
}

} // namespace sluice::proto::http1
