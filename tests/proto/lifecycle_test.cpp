// The stream lifecycle decides the recv_disconnect contract without any socket.
#include <sluice/proto/lifecycle.hpp>

#include <catch2/catch.hpp>

using namespace sluice;
using namespace sluice::proto;

namespace {
decision fail(errc e) { return {verdict::fail, e}; }
constexpr decision go{verdict::proceed};
constexpr decision done{verdict::complete};
} // namespace

TEST_CASE("A closed or moved-from stream answers not_a_socket to every operation") {
  stream_lifecycle l; // default: closed
  CHECK(l.begin_receive() == fail(errc::not_a_socket));
  CHECK(l.begin_send() == fail(errc::not_a_socket));
  CHECK(l.begin_recv_disconnect(true) == fail(errc::not_a_socket));
  CHECK(l.begin_recv_disconnect(false) == fail(errc::not_a_socket));
  CHECK(l.begin_send_disconnect(0, false) == fail(errc::not_a_socket));
  CHECK(l.begin_connect() == fail(errc::not_a_socket));
}

TEST_CASE("recv_disconnect without a live runtime is not_initialised") {
  auto l = stream_lifecycle::connected();
  CHECK(l.begin_recv_disconnect(false) == fail(errc::not_initialised));
  CHECK(l.receive_side() == side_state::open);
}

TEST_CASE("An unconnected stream answers not_connected") {
  auto l = stream_lifecycle::opened();
  CHECK(l.begin_receive() == fail(errc::not_connected));
  CHECK(l.begin_send() == fail(errc::not_connected));
  CHECK(l.begin_recv_disconnect(true) == fail(errc::not_connected));
  CHECK(l.begin_send_disconnect(0, false) == fail(errc::not_connected));
  CHECK(l.begin_connect() == go);
  CHECK(l.begin_recv_disconnect(true) == fail(errc::not_connected)); // while connecting
  CHECK(l.begin_connect() == fail(errc::in_progress));
  l.end_connect(false);
  CHECK(l.connection() == connection_state::unconnected);
  CHECK(l.begin_connect() == go);
  l.end_connect(true);
  CHECK(l.connection() == connection_state::connected);
  CHECK(l.begin_connect() == fail(errc::already_connected));
}

TEST_CASE("Once recv_disconnect started, receives are shut_down whatever completes") {
  auto l = stream_lifecycle::connected();
  CHECK(l.begin_receive() == go);
  CHECK(!l.filter_receive());
  CHECK(l.begin_recv_disconnect(true) == go);
  // A receive completing now (before or after the shutdown's own completion) is
  // discarded, even if the OS delivered bytes.
  CHECK(l.filter_receive() == errc::shut_down);
  CHECK(l.begin_receive() == fail(errc::shut_down));
  l.end_recv_disconnect(true);
  CHECK(l.filter_receive() == errc::shut_down);
  CHECK(l.begin_receive() == fail(errc::shut_down));
}

TEST_CASE("A second recv_disconnect in flight is in_progress, after success it completes") {
  auto l = stream_lifecycle::connected();
  CHECK(l.begin_recv_disconnect(true) == go);
  CHECK(l.begin_recv_disconnect(true) == fail(errc::in_progress));
  l.end_recv_disconnect(true);
  CHECK(l.begin_recv_disconnect(true) == done);
  CHECK(l.receive_side() == side_state::shut);
}

TEST_CASE("A failed recv_disconnect reopens the receive side") {
  auto l = stream_lifecycle::connected();
  CHECK(l.begin_recv_disconnect(true) == go);
  l.end_recv_disconnect(false);
  CHECK(l.receive_side() == side_state::open);
  CHECK(l.begin_receive() == go);
}

TEST_CASE("The send side stays usable after recv_disconnect") {
  auto l = stream_lifecycle::connected();
  CHECK(l.begin_recv_disconnect(true) == go);
  l.end_recv_disconnect(true);
  CHECK(l.begin_send() == go);
}

TEST_CASE("send_disconnect with data on a transport without disconnect data is "
          "no_protocol_option") {
  auto l = stream_lifecycle::connected();
  CHECK(l.begin_send_disconnect(5, false) == fail(errc::no_protocol_option));
  CHECK(l.send_side() == side_state::open);
  CHECK(l.begin_send_disconnect(5, true) == go);
}

TEST_CASE("After send_disconnect, sends are shut_down and receives still work") {
  auto l = stream_lifecycle::connected();
  CHECK(l.begin_send_disconnect(0, false) == go);
  CHECK(l.begin_send() == fail(errc::shut_down));
  l.end_send_disconnect(true);
  CHECK(l.begin_send() == fail(errc::shut_down));
  CHECK(l.begin_send_disconnect(0, false) == done);
  CHECK(l.begin_receive() == go);
}

TEST_CASE("close() returns the lifecycle to closed") {
  auto l = stream_lifecycle::connected();
  l.close();
  CHECK(l.connection() == connection_state::closed);
  CHECK(l.begin_receive() == fail(errc::not_a_socket));
  CHECK(l.filter_receive() == errc::operation_aborted);
}

TEST_CASE("recv_disconnect on a connection that already ended is a success") {
  auto l = stream_lifecycle::connected();
  CHECK(l.begin_recv_disconnect(true) == go);
  CHECK_FALSE(l.settle_recv_disconnect(std::make_error_code(std::errc::not_connected)));
  CHECK(l.receive_side() == side_state::shut);
  auto m = stream_lifecycle::connected();
  CHECK(m.begin_recv_disconnect(true) == go);
  CHECK(m.settle_recv_disconnect(std::make_error_code(std::errc::network_down)) ==
        errc::network_down);
  CHECK(m.receive_side() == side_state::open);
}
