// libFuzzer target: the PROXY protocol header (v1 and v2). Whatever the bytes, parse()
// decides consistently: a header fits within the input and the protocol's bounds; every
// prefix of a header needs more; formatting a parsed v2 header and parsing it again gives
// the same header; an error never turns into a header when more bytes follow.
#include <sluice/proto/proxy_protocol.hpp>

#include <cstdint>
#include <cstdlib>
#include <vector>

using namespace sluice::proto::proxy;

namespace {
void check(bool ok) {
  if (!ok) std::abort();
}
} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto in = std::as_bytes(std::span(data, size));
  limits l;
  l.max_v2_length = 600;
  const auto r = parse(in, l);
  if (const auto* h = std::get_if<header>(&r)) {
    check(h->size > 0 && h->size <= in.size());
    check(h->version == 1 ? h->size <= max_v1_length : h->size <= 16 + l.max_v2_length);
    // The header alone is the same header; any shorter prefix needs more.
    const auto again = parse(in.first(h->size), l);
    check(std::holds_alternative<header>(again) && std::get<header>(again) == *h);
    for (std::size_t k : {std::size_t{0}, h->size / 2, h->size - 1})
      check(std::holds_alternative<need_more>(parse(in.first(k), l)));
    if (h->version == 2) {
      // What we would write for it reads back the same (CRC32C TLVs aside: format adds its own).
      header copy = *h;
      std::erase_if(copy.tlvs, [](const tlv& t) { return t.type == tlv_type::crc32c; });
      const auto wire = format_v2(copy, true);
      const auto back = parse(wire, limits{65535});
      check(std::holds_alternative<header>(back));
      const auto& b = std::get<header>(back);
      check(b.local == copy.local && b.source == copy.source && b.destination == copy.destination);
    } else if (!h->local) {
      const auto line = format_v1(*h);
      const auto back = parse(std::as_bytes(std::span(line.data(), line.size())));
      check(std::holds_alternative<header>(back) && std::get<header>(back).source == h->source);
    }
  } else if (const auto* need = std::get_if<need_more>(&r)) {
    check(need->total > in.size());
  } else {
    // An error stays an error whatever follows.
    std::vector<std::byte> more(in.begin(), in.end());
    more.resize(more.size() + 200, std::byte{'\n'});
    check(std::holds_alternative<parse_error>(parse(more, l)));
  }
  return 0;
}
