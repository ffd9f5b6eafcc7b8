// The transports sluice offers and whether each carries disconnect data — the analog
// of WSAEnumProtocols and its XP1_DISCONNECT_DATA flag.
#pragma once

#include <sluice/export.hpp>

#include <span>
#include <string_view>

namespace sluice {

struct transport_info {
  std::string_view name;
  bool carries_disconnect_data;
  std::string_view description;
};

SLUICE_API std::span<const transport_info> transports() noexcept;

} // namespace sluice
