// Everything a program usually needs.
#pragma once

#include <sluice/error.hpp>
#include <sluice/io_context.hpp>
#include <sluice/net/activation.hpp>
#include <sluice/net/endpoint.hpp>
#include <sluice/net/framed.hpp>
#include <sluice/net/handover.hpp>
#include <sluice/net/local.hpp>
#include <sluice/net/resolve.hpp>
#include <sluice/net/stream_utils.hpp>
#include <sluice/net/tcp.hpp>
#include <sluice/net/transports.hpp>
#include <sluice/net/udp.hpp>
#include <sluice/net/websocket.hpp>
#include <sluice/scope.hpp>
#include <sluice/signal.hpp>
#include <sluice/spawn.hpp>
#include <sluice/stop_token.hpp>
#include <sluice/sync.hpp>
#include <sluice/sync_wait.hpp>
#include <sluice/task.hpp>
#include <sluice/timer.hpp>
#include <sluice/version.hpp>
#include <sluice/when_all.hpp>
#include <sluice/yield.hpp>
