// HTTP/1.1, sans-io: a parser for requests (server role) or responses (client role),
// and a serializer. Bytes in, events out; no sockets, no clocks, no OS headers.
//
//   http1::parser p(http1::role::server);
//   p.receive_data(bytes);
//   for (;;) {
//     auto ev = p.next_event(); // need_data / request_head / body_data / message_end /
//     ...                       // end_of_input / parse_error
//   }
//
// Requests are parsed one after another from the same buffer, so pipelined requests
// come out in order. Every size is limited (see limits); each limit has its own status.
// What the peer gets wrong is a parse_error event carrying the status to answer with;
// what the local side gets wrong (a header value with CR/LF, say) throws local_error.
//
// Rejected on purpose (request smuggling): Content-Length together with
// Transfer-Encoding; differing Content-Length values; Transfer-Encoding in HTTP/1.0;
// obs-fold; bare CR or LF where CRLF is required; whitespace between a field name and
// its colon; invalid, oversized or overflowing chunk sizes; transfer codings other
// than "chunked" (501); a missing or repeated Host in HTTP/1.1.
#pragma once

#include <sluice/export.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace sluice::proto::http1 {

/// The size limits a parser enforces, and the status a server answers past each.
struct limits {
  std::size_t max_request_line = 8 * 1024;  ///< request line (or status line): 414
  std::size_t max_header_bytes = 32 * 1024; ///< all field lines of one head: 431
  std::size_t max_header_count = 100;       ///< field lines of one head: 431
  std::size_t max_body = 8 * 1024 * 1024;   ///< decoded body: 413
  std::size_t max_chunk_line = 1024;        ///< chunk-size line with extensions: 400
};

/// One header field.
struct field {
  std::string name;  ///< as received (compare case-insensitively)
  std::string value; ///< without surrounding whitespace
};

/// The header (or trailer) fields of a message, in order.
class SLUICE_PROTO_API fields {
public:
  /// Appends a field (the serializer rejects CR, LF and NUL in it).
  void add(std::string name, std::string value) {
    list_.push_back({std::move(name), std::move(value)});
  }
  /// The first field of that name (case-insensitive), or nullptr.
  const std::string* find(std::string_view name) const noexcept;
  /// How many fields have that name (case-insensitive).
  std::size_t count(std::string_view name) const noexcept;
  /// Every field, in order.
  const std::vector<field>& all() const noexcept { return list_; }
  /// True if there is none.
  bool empty() const noexcept { return list_.empty(); }

private:
  std::vector<field> list_;
};

/// A request head, as parsed (or as a client writes it).
struct request {
  std::string method;               ///< "GET", "POST", ...
  std::string target;               ///< the request target, as sent ("/path?query")
  int minor_version = 1;            ///< HTTP/1.x: 0 or 1
  fields headers;                   ///< the header fields
  bool keep_alive = true;           ///< after this exchange, per version and Connection
  bool expect_continue = false;     ///< "Expect: 100-continue"
  bool chunked = false;             ///< Transfer-Encoding: chunked
  std::uint64_t content_length = 0; ///< when !chunked
  /// The client's address ("192.0.2.1:5000", "[::1]:443"), set by the server that
  /// received the request (sluice::http: its stream's remote_endpoint(), which a PROXY
  /// protocol header may have set); the parser leaves it empty.
  std::string remote;
};

/// A response's status line and header section, as parsed (or as a server writes
/// it). (http::response is a whole response, body included.)
struct response_header {
  int status = 200;       ///< 100 to 999
  std::string reason;     ///< empty: the standard phrase
  int minor_version = 1;  ///< HTTP/1.x: 0 or 1
  fields headers;         ///< the header fields
  bool keep_alive = true; ///< false: "Connection: close"
};

/// Which messages a parser reads.
enum class role : std::uint8_t {
  server, ///< reads requests
  client  ///< reads responses
};

/// Event: nothing complete is buffered; feed more bytes.
struct need_data {};
/// Event: a request head (server role).
struct request_head {
  request head; ///< the head
};
/// Event: a response head (client role).
struct response_head {
  response_header head; ///< the head
};
/// Event: a piece of the body, decoded (chunk framing removed).
struct body_data {
  std::span<const std::byte> data; ///< valid until the next receive_data()
};
/// Event: the message is complete.
struct message_end {
  fields trailers; ///< trailer fields of a chunked body
};
/// Event: the peer ended the stream between two messages.
struct end_of_input {};
/// Event: the input breaks HTTP/1.1 or a limit; the parser is failed.
struct parse_error {
  int status;          ///< what a server answers: 400, 413, 414, 431, 501, 505, 417
  std::string message; ///< what is wrong, and where
};

using event = std::variant<need_data, request_head, response_head, body_data, message_end,
                           end_of_input, parse_error>;

/// Local misuse: a message the serializer must not write.
class SLUICE_PROTO_API local_error : public std::logic_error {
public:
  using std::logic_error::logic_error;
};

/// An HTTP/1.1 message parser, sans-io: bytes in, events out (next_event).
class SLUICE_PROTO_API parser {
public:
  /// Reads requests (server) or responses (client) within `l`.
  explicit parser(role r, limits l = {});

  /// Copies `bytes` in.
  void receive_data(std::span<const std::byte> bytes);
  /// Copies `text` in.
  void receive_data(std::string_view text) {
    receive_data(std::as_bytes(std::span(text.data(), text.size())));
  }
  /// Parses `bytes` where they are, without copying them: the caller keeps them alive
  /// and unchanged until next_event() next returns need_data (or the parser is
  /// destroyed). By then the parser has copied what it has not consumed, at most a
  /// partial head or chunk line, so the caller may drop its buffer (a lent_buffer from
  /// recv_some, say). The spans of body_data events point into `bytes`. Bytes still
  /// buffered from before are appended to instead (a head split across two buffers).
  void receive_borrowed(std::span<const std::byte> bytes);
  /// The peer ended the stream.
  void receive_eof() noexcept { eof_ = true; }

  /// The next event (need_data when nothing complete is buffered).
  event next_event();

  /// Client role: the method of the request whose response comes next (a response to
  /// HEAD has no body). Defaults to GET.
  void expect_response_to(std::string_view method) { method_ = std::string(method); }

  /// Bytes received and not yet turned into events (pipelined requests, say).
  std::size_t buffered() const noexcept { return view_.size() - pos_; }
  /// Those bytes: after a message that switches protocols (a WebSocket handshake),
  /// the first bytes of the new protocol. Valid until the next receive_data().
  std::span<const std::byte> unparsed() const noexcept { return view_.subspan(pos_); }
  /// Whether the parser is reading from a caller's buffer (receive_borrowed).
  bool borrowing() const noexcept { return borrowing_; }
  /// The limits in force.
  const limits& message_limits() const noexcept { return limits_; }

private:
  enum class state : std::uint8_t {
    head,
    body_length,
    chunk_size,
    chunk_data,
    chunk_crlf,
    trailers,
    body_until_close,
    end, ///< the body is complete: message_end next
    failed,
  };

  event next_event_here();
  /// Ends a borrow: copies what is unconsumed into in_.
  void end_borrow();
  event parse_head();
  event parse_chunk_size();
  event parse_trailers();
  event begin_body(bool chunked, std::uint64_t length, bool until_close);
  event fail(int status, std::string message);
  event finish_message(fields trailers = {});
  /// Finds the blank line ending a head starting at pos_; npos while incomplete.
  /// Sets *error when the head is malformed or over a limit.
  std::size_t find_head_end(bool has_start_line, std::optional<parse_error>* error);

  role role_;
  limits limits_;
  std::vector<std::byte> in_;
  /// What is being parsed: in_, or the caller's bytes while borrowing_.
  std::span<const std::byte> view_;
  std::size_t pos_ = 0;
  bool borrowing_ = false;

  /// find_head_end's progress, relative to pos_.
  std::size_t scan_rel_ = 0;
  std::size_t line_rel_ = 0;
  std::size_t lines_ = 0;
  state state_ = state::head;
  bool eof_ = false;
  std::uint64_t remaining_ = 0; ///< of the current Content-Length body or chunk
  std::uint64_t body_total_ = 0;
  std::string method_ = "GET";
};

// --- serializer -------------------------------------------------------------------

/// The standard reason phrase ("Not Found"), or "Unknown".
SLUICE_PROTO_API std::string_view reason_phrase(int status) noexcept;

/// Appends a response's head: its status line and fields, then "Content-Length:
/// <content_length>", or "Transfer-Encoding: chunked" when there is none (no framing
/// field at all for 1xx/204/304), "Date: <date>" when `date` is given and the head has
/// no Date, and "Connection: close" unless keep_alive. The fields' own Content-Length
/// and Transfer-Encoding are left out. Throws local_error as serialize() does.
SLUICE_PROTO_API void serialize_head(const response_header& head,
                                     std::optional<std::uint64_t> content_length, std::string& out,
                                     std::string_view date = {});

/// Appends a response with a Content-Length body (or none, for 1xx/204/304). Adds
/// Content-Length, "Date: <date>" when `date` is given and the head has no Date, and,
/// unless keep_alive, "Connection: close". Throws local_error for a field name or value
/// that could split the message (CR, LF, NUL, bad name), a status outside 100–999 or a
/// version other than 1.0/1.1; `out` may then hold part of the response (cut it back).
SLUICE_PROTO_API void serialize(const response_header& head, std::string_view body,
                                std::string& out, std::string_view date = {});

/// Appends a request with a Content-Length body when non-empty.
SLUICE_PROTO_API void serialize(const request& head, std::string_view body, std::string& out);
/// Chunked bodies: the head with "Transfer-Encoding: chunked", then chunks, then the end.
SLUICE_PROTO_API void serialize_chunked_head(const response_header& head, std::string& out,
                                             std::string_view date = {});
/// One chunk (nothing for empty data: an empty chunk would end the body).
SLUICE_PROTO_API void serialize_chunk(std::string_view data, std::string& out);
/// The line that opens a chunk of `size` bytes ("1a\r\n"): the caller sends the data and
/// "\r\n" after it (to send a large chunk without copying it). `size` must not be 0.
SLUICE_PROTO_API void serialize_chunk_size(std::size_t size, std::string& out);
/// The last chunk and the trailer fields.
SLUICE_PROTO_API void serialize_last_chunk(const fields& trailers, std::string& out);

} // namespace sluice::proto::http1
