# `cmake --install` puts the headers, the three libraries, a CMake package
# (sluiceConfig.cmake: targets sluice::proto, sluice::sluice, sluice::http) and a
# pkg-config file (sluice.pc) under the prefix.
include(CMakePackageConfigHelpers)

install(TARGETS sluice_proto sluice sluice_http EXPORT sluiceTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/sluice DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

set(SLUICE_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/sluice)
install(EXPORT sluiceTargets NAMESPACE sluice:: DESTINATION ${SLUICE_CMAKE_DIR})
set(SLUICE_NEEDS_LIBURING OFF)
if(TARGET PkgConfig::LIBURING)
  set(SLUICE_NEEDS_LIBURING ON)
endif()
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/sluiceConfig.cmake.in
  ${PROJECT_BINARY_DIR}/sluiceConfig.cmake INSTALL_DESTINATION ${SLUICE_CMAKE_DIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/sluiceConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/sluiceConfig.cmake
  ${PROJECT_BINARY_DIR}/sluiceConfigVersion.cmake DESTINATION ${SLUICE_CMAKE_DIR})

# pkg-config: `pkg-config --cflags --libs --static sluice` links against the static
# libraries (liburing and threads come with --static); a shared build
# (BUILD_SHARED_LIBS=ON) is used without --static.
set(SLUICE_PC_REQUIRES_PRIVATE "")
if(SLUICE_NEEDS_LIBURING)
  set(SLUICE_PC_REQUIRES_PRIVATE "liburing")
endif()
# Relocatable: the prefix is found from where the .pc file is (`cmake --install --prefix`
# may put it anywhere).
file(RELATIVE_PATH SLUICE_PC_TO_PREFIX ${CMAKE_INSTALL_FULL_LIBDIR}/pkgconfig
  ${CMAKE_INSTALL_PREFIX})
string(REGEX REPLACE "/$" "" SLUICE_PC_TO_PREFIX "${SLUICE_PC_TO_PREFIX}")
# A shared build says so to its users (it matters for dllimport on Windows).
set(SLUICE_PC_CFLAGS "")
if(BUILD_SHARED_LIBS)
  set(SLUICE_PC_CFLAGS " -DSLUICE_SHARED")
endif()
configure_file(${PROJECT_SOURCE_DIR}/cmake/sluice.pc.in ${PROJECT_BINARY_DIR}/sluice.pc @ONLY)

install(FILES ${PROJECT_BINARY_DIR}/sluice.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

# `cpack -G DEB` in the build tree: libsluice-dev, installed under /usr (the package
# config and sluice.pc are relocatable). Asio is compiled in; consumers need liburing
# and fmt headers and libraries only.
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME libsluice-dev)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
  "C++20 coroutine networking on io_uring (development files, static libraries)")
set(CPACK_PACKAGE_CONTACT "sluice developers <sluice@localhost>")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION libdevel)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "liburing-dev (>= 2.3), libfmt-dev (>= 9), pkg-config")
include(CPack)
