// fmt formatters for the values users log: endpoints, errc and errors with their
// context, and the reports of closing, draining and serving a connection.
#include "../support.hpp"

#include <sluice/http/server.hpp>
#include <sluice/server.hpp>

using namespace sluice;

TEST_CASE("Public value types format with fmt") {
  CHECK(fmt::format("{}", endpoint::loopback_v4(80)) == "127.0.0.1:80");
  CHECK(fmt::format("{}", errc::shut_down) == make_error_code(errc::shut_down).message());
  const sluice::error e(errc::timed_out, "recv from 127.0.0.1:80");
  CHECK(fmt::format("{}", e) == e.message());
  CHECK(fmt::format("{}", e).find("recv from 127.0.0.1:80") != std::string::npos);
  CHECK(fmt::format("{:>80}", e).size() == 80); // the format spec applies

  tcp::close_report clean{.peer_fin_seen = true, .bytes_discarded = 3};
  CHECK(fmt::format("{}", clean) == "peer FIN seen, 3 bytes discarded");
  tcp::close_report reset{.timed_out = true, .aborted = true};
  CHECK(fmt::format("{}", reset) == "aborted at the deadline, 0 bytes discarded");

  framed_stream::close_report framed{.peer_close_seen = true, .messages_discarded = 2};
  CHECK(fmt::format("{}", framed) == "peer CLOSE seen, 2 messages discarded");

  CHECK(fmt::format("{}", drain_report{.drained = 12, .aborted = 1}) == "drained 12, aborted 1");

  http::connection_report c{.requests = 3, .rejected_status = 408, .sends = 2};
  CHECK(fmt::format("{}", c) == "3 requests in 2 sends, 0 internal errors, rejected with 408");
}
