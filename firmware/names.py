"""Every string constant of the firmware that is longer than 10 characters and
spelled like a name or a dotted name, interned before the firmware's modules
load: imported by firmware/__init__.py, then dropped (the names stay).

MicroPython interns a module's identifiers and its string constants of up to
10 characters when it loads, but gives each longer string constant an object
of its own: 16 bytes of heap for every module that uses it, as long as the
module is loaded, ROMFS or not. A constant whose text is already interned
costs no object, and json.loads gives the interned name instead of copying a
received key such as "connectorId". Attribute names are interned when their
module loads, and so is the whole dotted name of an import statement: naming
the texts here that way is enough; the functions never run. The names take
slots of the pool of names boot takes anyway (docs/memory.md, "Interned
names"). tests/unit/test_long_names.py keeps the
list equal to what the device code uses."""
# pyright: reportMissingImports=false


def _names(o):
    return (o.AllowOfflineTxForUnknownId, o.AuthorizationCacheEnabled, o.AuthorizationKey,
            o.AuthorizeRemoteTxRequests, o.BootNotification, o.CancelReservation,
            o.ChangeAvailability, o.ChangeConfiguration,
            o.ClockAlignedDataInterval, o.ConcurrentTx, o.ConnectionTimeOut, o.ConnectorLockFailure,
            o.DEFAULT_SINGLE_PHASE, o.DEFAULT_THREE_PHASE, o.DEFAULT_VARIANT, o.DataTransfer,
            o.DeAuthorized, o.DefaultIdTag, o.DiagnosticsStatusNotification, o.DownloadFailed,
            o.Downloading, o.EVCommunicationError, o.EVDisconnected, o.EarthLeakageError,
            o.EmergencyButton, o.EmergencyStop, o.FEATURE_PROFILES, o.FirmwareAllowDowngrade,
            o.FirmwareStatusNotification, o.FirmwareTrialOffline, o.FormationViolation,
            o.GenericError, o.GetConfiguration, o.GetDiagnostics,
            o.GetLocalListVersion, o.GroundFailure, o.HeartbeatInterval, o.HighTemperature,
            o.InputFrequencyError, o.InstallationFailed, o.InternalError, o.JOLT_RESET_CAUSE,
            o.LocalAuthListEnabled, o.LocalAuthListMaxLength, o.LocalAuthorizeOffline,
            o.LocalPreAuthorize, o.MaxCurrentLimit, o.MaxEnergyOnInvalidId,
            o.MeterValueSampleInterval, o.MeterValues, o.MeterValuesAlignedData,
            o.MeterValuesSampledData, o.ModBusComsFailure, o.NotApplicable, o.NotImplemented,
            o.NotSupported, o.NumberOfConnectors, o.OcppChargerId, o.OcppServerAddress,
            o.OnPowerLossRestart, o.OverCurrentFailure, o.OverVoltage, o.PowerFailure,
            o.PowerMeterFailure, o.PowerSwitchFailure, o.PropertyConstraintViolation,
            o.ProtocolError, o.ReaderFailure, o.RebootRequired, o.RemoteStartTransaction,
            o.RemoteStopTransaction, o.ReserveConnectorZeroSupported, o.ResetFailure,
            o.ResetRetries, o.SDCardFailure, o.SIM000000000, o.SendLocalList,
            o.SendLocalListMaxLength, o.StartTransaction,
            o.StatusNotification, o.StopTransaction, o.StopTransactionOnEVSideDisconnect,
            o.StopTransactionOnInvalidId, o.StopTxnAlignedData, o.StopTxnSampledData, o.SuspendedEV,
            o.SuspendedEVSE, o.Temperature, o.Transaction, o.TransactionMessageAttempts,
            o.TransactionMessageRetryInterval, o.TriggerMessage, o.TypeConstraintViolation,
            o.Unavailable, o.UnderVoltage, o.UnknownMessageId, o.UnknownVendorId, o.UnlockCommand,
            o.UnlockConnector, o.UnlockConnectorOnEVSideDisconnect, o.UnlockFailed,
            o.UpdateFirmware, o.UploadFailed, o.VARIANT_DEFAULTS, o.VersionMismatch,
            o.WebSocketPingInterval, o.WiFiConnect, o.WiFiPrimaryPass, o.WiFiPrimarySsid,
            o.chargePointModel, o.chargePointSerialNumber, o.chargePointVendor, o.chargingProfile,
            o.configurationKey, o.connectorId, o.currentTime, o.derate_hyst, o.disconnected,
            o.firmwareVersion, o.listVersion, o.localAuthorizationList, o.lock_retries,
            o.lock_retry_ms, o.micropython, o.min_version, o.parentIdTag, o.remote_reservation,
            o.requestedMessage, o.reservationId, o.reset_wait_s, o.retrieveDate, o.retryInterval,
            o.start_answer, o.suspendedEVTimeout, o.temperature_dc, o.transactionData,
            o.transactionId, o.u16i16u32i32f32, o.vendorErrorCode)


def _dotted():
    import Current.Import
    import Current.Offered
    import Energy.Active.Import.Interval
    import Energy.Active.Import.Register
    import Power.Offered
    import Sample.Clock
    import Sample.Periodic
    import Three.Phase
    import Transaction.Begin
    import Transaction.End
    import auth_cache.bin
    import auth_cache.json
    import auth_list.bin
    import faults.json
    import faults.latch
    import firmware.auth
    import firmware.commissioning
    import firmware.diagnostics
    import firmware.fwupdate
    import firmware.locallist
    import firmware.meter_maps
    import firmware.names
    import firmware.metervalues
    import firmware.netmgr
    import firmware.reservations
    import firmware.wdt_report
    import fw_pending.txt
    import hal.sim._net
    import hal.sim._rare
    import ota_key.json
    import otp_state.json
    import provision.json
    import reservation.json
    import stopdata.txt
    import tx_journal.bin
    import tx_state.json
    import watchdog.txt
