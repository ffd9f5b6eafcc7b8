// The transports sluice offers and whether each carries disconnect data — the analog
// of WSAEnumProtocols and its XP1_DISCONNECT_DATA flag.
#pragma once

#include <sluice/export.hpp>

#include <span>
#include <string_view>

namespace sluice {

/// One transport.
struct transport_info {
  std::string_view name;        ///< "tcp", "framed"
  bool carries_disconnect_data; ///< recv_disconnect() can yield the peer's bytes on it
  std::string_view description; ///< one line
};

/// Every transport sluice offers.
SLUICE_API std::span<const transport_info> transports() noexcept;

} // namespace sluice
