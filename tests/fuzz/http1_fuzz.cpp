// libFuzzer target: the HTTP/1.1 parser, both roles, the input cut into pieces whose
// sizes come from the input itself. Checks that the parser never reads out of bounds,
// never loops, and that every body it delivers stays within the body limit.
#include <sluice/proto/http1.hpp>

#include <cstdint>
#include <cstdlib>

using namespace sluice::proto::http1;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const role r = (data[0] & 1) ? role::client : role::server;
  const std::size_t step = 1 + data[1] % 64;
  limits l;
  l.max_request_line = 256;
  l.max_header_bytes = 1024;
  l.max_header_count = 16;
  l.max_body = 4096;
  parser p(r, l);
  if (data[0] & 2) p.expect_response_to("HEAD");
  const std::byte* in = reinterpret_cast<const std::byte*>(data + 2);
  const std::size_t n = size - 2;
  std::size_t body = 0;
  bool done = false;
  auto drain = [&] {
    for (int guard = 0; guard < 100000; ++guard) {
      auto ev = p.next_event();
      if (std::holds_alternative<need_data>(ev)) return;
      if (auto* b = std::get_if<body_data>(&ev)) {
        body += b->data.size();
        if (body > l.max_body) std::abort(); // a limit was not enforced
      }
      if (std::holds_alternative<message_end>(ev)) body = 0;
      if (std::holds_alternative<parse_error>(ev) || std::holds_alternative<end_of_input>(ev)) {
        done = true;
        return;
      }
    }
    std::abort(); // no progress
  };
  for (std::size_t i = 0; i < n && !done; i += step) {
    p.receive_data(std::span(in + i, std::min(step, n - i)));
    drain();
  }
  if (!done) {
    p.receive_eof();
    drain();
  }
  return 0;
}
