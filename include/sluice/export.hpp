// Which symbols the shared libraries export (BUILD_SHARED_LIBS=ON): the public API is
// marked, everything else stays hidden (the libraries are built with
// -fvisibility=hidden -fvisibility-inlines-hidden). One macro per library, because on
// Windows a DLL exports what it defines and imports what the others define. Static
// builds (the default) define them empty.
#pragma once

#if defined(SLUICE_SHARED)
// (Standard attribute syntax, so that it composes with [[nodiscard]] on a class.)
#if defined(_WIN32)
#define SLUICE_EXPORT_ [[gnu::dllexport]]
#define SLUICE_IMPORT_ [[gnu::dllimport]]
#else
#define SLUICE_EXPORT_ [[gnu::visibility("default")]]
#define SLUICE_IMPORT_ [[gnu::visibility("default")]]
#endif
#else
#define SLUICE_EXPORT_
#define SLUICE_IMPORT_
#endif

// sluice::proto
#if defined(SLUICE_BUILDING_PROTO)
#define SLUICE_PROTO_API SLUICE_EXPORT_
#else
#define SLUICE_PROTO_API SLUICE_IMPORT_
#endif
// sluice::sluice (runtime, sockets, backends)
#if defined(SLUICE_BUILDING_CORE)
#define SLUICE_API SLUICE_EXPORT_
#else
#define SLUICE_API SLUICE_IMPORT_
#endif
// sluice::http
#if defined(SLUICE_BUILDING_HTTP)
#define SLUICE_HTTP_API SLUICE_EXPORT_
#else
#define SLUICE_HTTP_API SLUICE_IMPORT_
#endif
