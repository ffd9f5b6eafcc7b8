// systemd socket activation: see include/sluice/net/activation.hpp and docs/service.md.
#include <sluice/net/activation.hpp>

#include "../backend/socket_ops.hpp"

#include <fmt/format.h>

namespace sluice::activation {

namespace sys = sluice::detail::sys;

result<std::vector<inherited>> listen_fds(bool unset_environment) {
  auto got = sys::inherited_sockets(unset_environment);
  if (!got) return std::move(got).error();
  std::vector<inherited> out;
  for (auto& [h, name] : *got)
    out.push_back({h, std::move(name)});
  return out;
}

result<tcp::acceptor> listen_or_bind(io_context& io, const endpoint& fallback,
                                     std::string_view name, const tcp::listen_options& o) {
  auto passed = listen_fds(true);
  if (!passed) return std::move(passed).error();
  if (passed->empty()) return tcp::acceptor::bind(io, fallback, o);
  const inherited* pick = nullptr;
  std::string names;
  for (const auto& p : *passed) {
    names += (names.empty() ? "" : ", ") + p.name;
    if (pick == nullptr && (name.empty() || p.name == name)) pick = &p;
  }
  sluice::detail::native_handle h = sluice::detail::invalid_handle;
  if (pick != nullptr) h = pick->handle;
  for (const auto& p : *passed) // the ones not taken are nobody's
    if (p.handle != h) sys::close(p.handle);
  if (pick == nullptr)
    return error(std::make_error_code(std::errc::invalid_argument),
                 fmt::format("socket activation: no passed socket is named '{}' (there are: {})",
                             name, names));
  auto a = tcp::acceptor::adopt(io, h);
  if (!a) {
    sys::close(h);
    return error(a.error().code(), fmt::format("socket activation: passed socket '{}': {}",
                                               pick->name, a.error().context()));
  }
  return a;
}

} // namespace sluice::activation
