# Header-only dependencies for the mingw-w64 build. Debian's fmt and Catch2 live in
# /usr/include, and putting /usr/include itself on mingw's include path drags in
# glibc's headers; so a private directory gets links to just those libraries.
set(SLUICE_WIN_DEPS ${CMAKE_BINARY_DIR}/win-deps/include)
file(MAKE_DIRECTORY ${SLUICE_WIN_DEPS})
foreach(dir fmt catch2)
  if(NOT EXISTS ${SLUICE_WIN_DEPS}/${dir})
    file(CREATE_LINK /usr/include/${dir} ${SLUICE_WIN_DEPS}/${dir} SYMBOLIC)
  endif()
endforeach()

add_library(fmt::fmt INTERFACE IMPORTED)
set_target_properties(fmt::fmt PROPERTIES
  INTERFACE_INCLUDE_DIRECTORIES ${SLUICE_WIN_DEPS}
  INTERFACE_COMPILE_DEFINITIONS FMT_HEADER_ONLY)
add_library(Catch2::Catch2 INTERFACE IMPORTED)
set_target_properties(Catch2::Catch2 PROPERTIES INTERFACE_INCLUDE_DIRECTORIES ${SLUICE_WIN_DEPS})
