// sluice's version. The one place it is written: CMakeLists.txt reads it from here for
// the package files (sluiceConfigVersion.cmake, sluice.pc). CHANGELOG.md says what
// changed.
#pragma once

#define SLUICE_VERSION_MAJOR 0
#define SLUICE_VERSION_MINOR 1
#define SLUICE_VERSION_PATCH 0
// major * 10000 + minor * 100 + patch, for #if comparisons.
#define SLUICE_VERSION                                                                             \
  (SLUICE_VERSION_MAJOR * 10000 + SLUICE_VERSION_MINOR * 100 + SLUICE_VERSION_PATCH)

#define SLUICE_VERSION_TEXT_(a, b, c) #a "." #b "." #c
#define SLUICE_VERSION_TEXT(a, b, c) SLUICE_VERSION_TEXT_(a, b, c)

namespace sluice {
/// "0.1.0".
inline constexpr const char* version_string =
    SLUICE_VERSION_TEXT(SLUICE_VERSION_MAJOR, SLUICE_VERSION_MINOR, SLUICE_VERSION_PATCH);
} // namespace sluice
