// sluice::errc, sluice::error and result<T>: errors are values.
//
// Part of sluice::proto: standard library only. Every operation that can fail for a
// network condition returns result<T>; nothing throws for those. errc is a portable
// error *condition*: an OS error code (ECONNRESET from Linux, WSAECONNRESET from
// Winsock) compares equal to the errc it stands for, so callers test
// `r.error() == errc::connection_reset` whatever backend produced it.
#pragma once

#include <sluice/export.hpp>

#include <fmt/format.h>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>
#include <variant>

namespace sluice {

enum class errc {
  /// recv_disconnect contract (docs/architecture.md), with the Winsock code each one stands for.
  not_initialised = 1, ///< WSANOTINITIALISED: no live io_context
  network_down,        ///< WSAENETDOWN
  buffer_too_small,    ///< WSAEFAULT: disconnect data does not fit; it stays pending
  no_protocol_option,  ///< WSAENOPROTOOPT: transport carries no disconnect data
  in_progress,         ///< WSAEINPROGRESS: another recv_disconnect is in flight
  not_connected,       ///< WSAENOTCONN
  not_a_socket,        ///< WSAENOTSOCK: closed, moved-from or invalid handle
  shut_down,           ///< WSAESHUTDOWN: that direction was shut down
  /// connection and operation outcomes
  connection_refused,
  connection_reset,
  connection_aborted,
  broken_pipe,
  timed_out,
  operation_aborted, ///< cancelled through a stop_token, a close() or a deadline
  address_in_use,
  address_not_available,
  already_connected,
  network_unreachable,
  host_unreachable,
  invalid_endpoint,    ///< endpoint text that does not parse
  backend_unavailable, ///< a forced backend that cannot start
  unsupported_backend, ///< SLUICE_BACKEND names no backend
  too_many_open_files, ///< EMFILE / ENFILE / WSAEMFILE
  protocol_error,      ///< the peer broke the protocol (framing, HTTP); context says how
  message_too_large,   ///< a message above the configured limit, or a datagram too big (EMSGSIZE)
  end_of_stream,       ///< the peer ended its side before what was asked for arrived
  host_not_found,      ///< name resolution found no address; context names the host
  channel_closed,      ///< sending on a closed channel, or receiving from a closed, empty one
};

} // namespace sluice

/// \cond SPECIALIZATIONS
template <> struct std::is_error_condition_enum<sluice::errc> : std::true_type {};
/// \endcond

namespace sluice {

/// The category of sluice's own error codes and conditions (its name is "sluice").
SLUICE_PROTO_API const std::error_category& error_category() noexcept;

/// The portable condition `e`: an OS error code compares equal to the errc it stands for.
inline std::error_condition make_error_condition(errc e) noexcept {
  return {static_cast<int>(e), error_category()};
}

/// An error_code of sluice's own category, for errors sluice decides itself
/// (the stream lifecycle, a deadline, bad endpoint text).
inline std::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), error_category()};
}

/// An error code plus the context that makes it actionable: which operation, which
/// endpoint, which limit ("connect to 127.0.0.1:9: connection refused").
class SLUICE_PROTO_API error {
public:
  /// No error.
  error() = default;
  /// `code`, described by `context` (the operation and its endpoint, say).
  error(std::error_code code, std::string context = {})
      : code_(code), context_(std::move(context)) {}
  /// One of sluice's own codes, described by `context`.
  error(errc e, std::string context = {}) : error(make_error_code(e), std::move(context)) {}

  /// The error code (compare it with an errc).
  const std::error_code& code() const noexcept { return code_; }
  /// What failed: "connect to 127.0.0.1:9", say; may be empty.
  const std::string& context() const noexcept { return context_; }
  /// The context and the code's message: "connect to 127.0.0.1:9: connection refused".
  std::string message() const;

  /// True if the code stands for `b`.
  friend bool operator==(const error& a, errc b) noexcept { return a.code_ == b; }
  /// True if the code stands for the standard condition `b`.
  friend bool operator==(const error& a, std::errc b) noexcept { return a.code_ == b; }
  /// True if the code equals `b`.
  friend bool operator==(const error& a, const std::error_code& b) noexcept { return a.code_ == b; }

private:
  std::error_code code_;
  std::string context_;
};

/// Thrown only by result<T>::value() on an error, for callers who prefer exceptions.
class SLUICE_PROTO_API bad_result_access : public std::system_error {
public:
  /// Carries the code and context of `e`.
  explicit bad_result_access(const error& e) : std::system_error(e.code(), e.context()) {}
};

/// A value of type T, or the error that prevented it. What every operation returns:
/// test it (`if (!r)`), then read the value (`*r`) or the error (`r.error()`). Ignoring
/// one is a compile-time warning ([[nodiscard]]).
template <class T> class [[nodiscard]] result {
  static_assert(!std::is_same_v<std::remove_cvref_t<T>, sluice::error>);

public:
  /// A value.
  template <class U = T>
  requires std::is_constructible_v<T, U&&> result(U&& v)
      : v_(std::in_place_index<0>, std::forward<U>(v)) {}
  /// An error.
  result(sluice::error e) : v_(std::in_place_index<1>, std::move(e)) {}
  /// An error of sluice's own, with its context.
  result(errc e, std::string context = {}) : result(sluice::error(e, std::move(context))) {}
  /// An error code, with its context.
  result(std::error_code c, std::string context = {})
      : result(sluice::error(c, std::move(context))) {}

  /// True if it holds a value.
  bool has_value() const noexcept { return v_.index() == 0; }
  /// True if it holds a value.
  explicit operator bool() const noexcept { return has_value(); }

  /// The value; throws bad_result_access if it holds an error.
  T& value() & { return check(), std::get<0>(v_); }
  /// The value; throws bad_result_access if it holds an error.
  const T& value() const& { return check(), std::get<0>(v_); }
  /// The value, moved out; throws bad_result_access if it holds an error.
  T&& value() && { return check(), std::move(std::get<0>(v_)); }
  /// The value (as value()).
  T& operator*() & { return value(); }
  /// The value (as value()).
  const T& operator*() const& { return value(); }
  /// The value, moved out (as value()).
  T&& operator*() && { return std::move(*this).value(); }
  /// A member of the value (as value()).
  T* operator->() { return &value(); }
  /// A member of the value (as value()).
  const T* operator->() const { return &value(); }

  /// The error. Precondition: !has_value().
  const sluice::error& error() const& { return std::get<1>(v_); }
  /// The error, moved out. Precondition: !has_value().
  sluice::error&& error() && { return std::get<1>(std::move(v_)); }

private:
  void check() const {
    if (!has_value()) throw bad_result_access(std::get<1>(v_));
  }
  std::variant<T, sluice::error> v_;
};

/// Success, or the error that prevented it.
template <> class [[nodiscard]] result<void> {
public:
  /// Success.
  result() = default;
  /// An error.
  result(sluice::error e) : e_(std::move(e)), failed_(true) {}
  /// An error of sluice's own, with its context.
  result(errc e, std::string context = {}) : result(sluice::error(e, std::move(context))) {}
  /// An error code, with its context.
  result(std::error_code c, std::string context = {})
      : result(sluice::error(c, std::move(context))) {}

  /// True on success.
  bool has_value() const noexcept { return !failed_; }
  /// True on success.
  explicit operator bool() const noexcept { return !failed_; }
  /// Throws bad_result_access on an error.
  void value() const {
    if (failed_) throw bad_result_access(e_);
  }
  /// The error. Precondition: !has_value().
  const sluice::error& error() const& { return e_; }
  /// The error, moved out. Precondition: !has_value().
  sluice::error&& error() && { return std::move(e_); }

private:
  sluice::error e_;
  bool failed_ = false;
};

namespace detail {
template <class T> struct is_result : std::false_type {};
template <class T> struct is_result<result<T>> : std::true_type {};
} // namespace detail

} // namespace sluice

// fmt: an errc prints its message ("connection reset"); an error prints its context and
// message ("connect to 127.0.0.1:9: connection refused").
/// \cond SPECIALIZATIONS
template <> struct fmt::formatter<sluice::errc> : fmt::formatter<std::string_view> {
  template <class Ctx> auto format(sluice::errc e, Ctx& ctx) const {
    return fmt::formatter<std::string_view>::format(sluice::make_error_code(e).message(), ctx);
  }
};
template <> struct fmt::formatter<sluice::error> : fmt::formatter<std::string_view> {
  template <class Ctx> auto format(const sluice::error& e, Ctx& ctx) const {
    return fmt::formatter<std::string_view>::format(e.message(), ctx);
  }
};
/// \endcond
