// libFuzzer target: the framing decoder. Decodes the input cut into pieces, and checks
// that messages encoded from the input decode back to exactly the same messages.
#include <sluice/proto/framing.hpp>

#include <cstdint>
#include <cstdlib>
#include <cstring>

using namespace sluice::proto::framing;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  limits l;
  l.max_message = 1024;
  l.max_disconnect_data = 64;
  const std::size_t step = 1 + data[0] % 32;
  const std::byte* in = reinterpret_cast<const std::byte*>(data + 1);
  const std::size_t n = size - 1;

  // 1. Arbitrary bytes: never crash, never loop.
  {
    connection c(l);
    bool done = false;
    for (std::size_t i = 0; i <= n && !done; i += step) {
      if (i < n)
        c.receive_data(std::span(in + i, std::min(step, n - i)));
      else
        c.receive_eof();
      for (int guard = 0;; ++guard) {
        if (guard > 100000) std::abort();
        auto ev = c.next_event();
        if (std::holds_alternative<need_data>(ev)) break;
        if (auto* m = std::get_if<message>(&ev); m && m->payload.size() > l.max_message)
          std::abort();
        if (std::holds_alternative<protocol_error>(ev) ||
            std::holds_alternative<end_of_stream>(ev)) {
          done = true;
          break;
        }
      }
    }
  }

  // 2. Round trip: cut the input into messages, encode, decode, compare.
  connection enc(l), dec(l);
  std::vector<std::byte> wire;
  std::vector<std::span<const std::byte>> sent;
  for (std::size_t i = 0; i < n;) {
    const std::size_t len = std::min<std::size_t>(static_cast<std::uint8_t>(in[i]) * 4, n - i);
    sent.emplace_back(in + i, len);
    enc.send_message(sent.back(), wire);
    i += len == 0 ? 1 : len;
  }
  enc.send_close(std::span(in, std::min<std::size_t>(n, 64)), wire);
  dec.receive_data(wire);
  dec.receive_eof();
  std::size_t k = 0;
  for (;;) {
    auto ev = dec.next_event();
    if (auto* m = std::get_if<message>(&ev)) {
      if (k >= sent.size() || m->payload.size() != sent[k].size() ||
          (m->payload.size() != 0 &&
           std::memcmp(m->payload.data(), sent[k].data(), m->payload.size()) != 0))
        std::abort();
      ++k;
      continue;
    }
    if (std::holds_alternative<peer_close>(ev)) continue;
    if (!std::holds_alternative<end_of_stream>(ev) || k != sent.size()) std::abort();
    break;
  }
  return 0;
}
