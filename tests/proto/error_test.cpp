// errc compares equal to the OS codes it stands for, on every platform's numbering.
#include <sluice/error.hpp>

#include <catch2/catch.hpp>
#include <cerrno>

using namespace sluice;

TEST_CASE("POSIX errno codes compare equal to their errc") {
  // generic_category: errno numbering on every platform (system_category is errno
  // only on POSIX; on Windows it holds Win32/Winsock codes, tested below).
  auto sys = [](int e) { return std::error_code(e, std::generic_category()); };
  CHECK(sys(ECONNRESET) == errc::connection_reset);
  CHECK(sys(ECONNREFUSED) == errc::connection_refused);
  CHECK(sys(EPIPE) == errc::broken_pipe);
  CHECK(sys(ETIMEDOUT) == errc::timed_out);
  CHECK(sys(ECANCELED) == errc::operation_aborted);
  CHECK(sys(EADDRINUSE) == errc::address_in_use);
  CHECK(sys(ENOTCONN) == errc::not_connected);
  CHECK(sys(ENOTSOCK) == errc::not_a_socket);
  CHECK(sys(EBADF) == errc::not_a_socket);
  CHECK(sys(ENETDOWN) == errc::network_down);
  CHECK(sys(ENOPROTOOPT) == errc::no_protocol_option);
#ifdef ESHUTDOWN // not in every C library's <cerrno> (mingw-w64 has none)
  CHECK(sys(ESHUTDOWN) == errc::shut_down);
#endif
  CHECK(sys(EMFILE) == errc::too_many_open_files);
  CHECK(sys(ENFILE) == errc::too_many_open_files);
  CHECK(sys(ECONNRESET) != errc::connection_refused);
  CHECK(std::make_error_code(std::errc::connection_reset) == errc::connection_reset);
}

TEST_CASE("Winsock codes compare equal to their errc") {
  auto wsa = [](int e) { return std::error_code(e, std::system_category()); };
  CHECK(wsa(10054) == errc::connection_reset);   // WSAECONNRESET
  CHECK(wsa(10061) == errc::connection_refused); // WSAECONNREFUSED
  CHECK(wsa(10057) == errc::not_connected);      // WSAENOTCONN
  CHECK(wsa(10038) == errc::not_a_socket);       // WSAENOTSOCK
  CHECK(wsa(10093) == errc::not_initialised);    // WSANOTINITIALISED
  CHECK(wsa(10036) == errc::in_progress);        // WSAEINPROGRESS
  CHECK(wsa(10050) == errc::network_down);       // WSAENETDOWN
  CHECK(wsa(10014) == errc::buffer_too_small);   // WSAEFAULT
  CHECK(wsa(10042) == errc::no_protocol_option); // WSAENOPROTOOPT
  CHECK(wsa(10058) == errc::shut_down);          // WSAESHUTDOWN
  CHECK(wsa(995) == errc::operation_aborted);    // ERROR_OPERATION_ABORTED
}

TEST_CASE("sluice's own codes compare equal to their errc only") {
  const auto ec = make_error_code(errc::shut_down);
  CHECK(ec == errc::shut_down);
  CHECK(ec != errc::not_connected);
  CHECK(ec.message() == "that direction of the socket has been shut down");
}

TEST_CASE("An error's message carries its context") {
  error e(std::error_code(ECONNREFUSED, std::generic_category()), "connect to 127.0.0.1:9");
  CHECK(e == errc::connection_refused);
  CHECK(e.message().rfind("connect to 127.0.0.1:9: ", 0) == 0);
}

TEST_CASE("result<T> holds a value or an error, and value() throws on an error") {
  result<int> ok = 5;
  REQUIRE(ok);
  CHECK(*ok == 5);
  result<int> bad(errc::timed_out, "recv");
  REQUIRE(!bad);
  CHECK(bad.error() == errc::timed_out);
  CHECK_THROWS_AS(bad.value(), bad_result_access);
  result<void> v;
  CHECK(v);
  result<void> verr(errc::shut_down);
  CHECK(verr.error() == errc::shut_down);
}
