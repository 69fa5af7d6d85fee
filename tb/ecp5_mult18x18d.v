// Simulation model of the Lattice ECP5 MULT18X18D DSP block, for the configurations rowstat's
// gateware instantiates (hw/pe.py on ECP5): an 18x18 multiplier whose input registers A and B
// and output register are each either bypassed ("NONE") or clocked by CLK0 with a clock enable
// chosen from CE0..CE3; no pipeline register, no shift chain (SOURCEA = SOURCEB = 0), C unused.
// Yosys ships the primitive as a black box only, so the benches need a model of their own.
// Anything outside that subset stops the simulation instead of being modelled wrongly:
// another clock, the pipeline register, multiplier bypass, the shift inputs, and a reset pin
// that goes high (the PE ties every RST to 0; the block's reset priority is not modelled).
`default_nettype none
module MULT18X18D (
    input wire A0, A1, A2, A3, A4, A5, A6, A7, A8, A9, A10, A11, A12, A13, A14, A15, A16, A17,
    input wire B0, B1, B2, B3, B4, B5, B6, B7, B8, B9, B10, B11, B12, B13, B14, B15, B16, B17,
    input wire C0, C1, C2, C3, C4, C5, C6, C7, C8, C9, C10, C11, C12, C13, C14, C15, C16, C17,
    input wire SIGNEDA, SIGNEDB, SOURCEA, SOURCEB,
    input wire CLK0, CE0, CE1, CE2, CE3, RST0, RST1, RST2, RST3,
    output wire P0, P1, P2, P3, P4, P5, P6, P7, P8, P9, P10, P11, P12, P13, P14, P15, P16, P17,
    output wire P18, P19, P20, P21, P22, P23, P24, P25, P26, P27, P28, P29, P30, P31, P32, P33,
    output wire P34, P35
);
    parameter REG_INPUTA_CLK = "NONE";
    parameter REG_INPUTA_CE = "CE0";
    parameter REG_INPUTA_RST = "RST0";
    parameter REG_INPUTB_CLK = "NONE";
    parameter REG_INPUTB_CE = "CE0";
    parameter REG_INPUTB_RST = "RST0";
    parameter REG_INPUTC_CLK = "NONE";
    parameter REG_PIPELINE_CLK = "NONE";
    parameter REG_OUTPUT_CLK = "NONE";
    parameter REG_OUTPUT_CE = "CE0";
    parameter REG_OUTPUT_RST = "RST0";
    parameter GSR = "ENABLED";
    parameter RESETMODE = "SYNC";
    parameter MULT_BYPASS = "DISABLED";

    wire [17:0] a = {A17, A16, A15, A14, A13, A12, A11, A10, A9, A8, A7, A6, A5, A4, A3, A2,
                     A1, A0};
    wire [17:0] b = {B17, B16, B15, B14, B13, B12, B11, B10, B9, B8, B7, B6, B5, B4, B3, B2,
                     B1, B0};
    wire [3:0] ce = {CE3, CE2, CE1, CE0};
    wire [3:0] rst = {RST3, RST2, RST1, RST0};

    function integer sel(input [8 * 4 - 1:0] name);   // "CE0".."CE3" / "RST0".."RST3" -> 0..3
        sel = name[7:0] - "0";
    endfunction

    function registered(input [8 * 4 - 1:0] clk);
        registered = clk != "NONE";
    endfunction

    reg [17:0] a_q = 18'd0, b_q = 18'd0;
    reg [35:0] p_q = 36'd0;
    wire [17:0] a_op = registered(REG_INPUTA_CLK) ? a_q : a;
    wire [17:0] b_op = registered(REG_INPUTB_CLK) ? b_q : b;
    wire signed [18:0] a_ext = {SIGNEDA & a_op[17], a_op};
    wire signed [18:0] b_ext = {SIGNEDB & b_op[17], b_op};
    wire signed [37:0] prod = a_ext * b_ext;
    wire [35:0] p = registered(REG_OUTPUT_CLK) ? p_q : prod[35:0];
    assign {P35, P34, P33, P32, P31, P30, P29, P28, P27, P26, P25, P24, P23, P22, P21, P20, P19,
            P18, P17, P16, P15, P14, P13, P12, P11, P10, P9, P8, P7, P6, P5, P4, P3, P2, P1,
            P0} = p;

    always @(posedge CLK0) begin
        if (registered(REG_INPUTA_CLK) && ce[sel(REG_INPUTA_CE)]) a_q <= a;
        if (registered(REG_INPUTB_CLK) && ce[sel(REG_INPUTB_CE)]) b_q <= b;
        if (registered(REG_OUTPUT_CLK) && ce[sel(REG_OUTPUT_CE)]) p_q <= prod[35:0];
        if ((registered(REG_INPUTA_CLK) && rst[sel(REG_INPUTA_RST)] !== 1'b0) ||
            (registered(REG_INPUTB_CLK) && rst[sel(REG_INPUTB_RST)] !== 1'b0) ||
            (registered(REG_OUTPUT_CLK) && rst[sel(REG_OUTPUT_RST)] !== 1'b0)) begin
            $display("MULT18X18D model %m: a register's reset pin is not 0 (not modelled)");
            $fatal(1);
        end
    end

    initial begin
        if ((REG_INPUTA_CLK != "NONE" && REG_INPUTA_CLK != "CLK0") ||
            (REG_INPUTB_CLK != "NONE" && REG_INPUTB_CLK != "CLK0") ||
            (REG_OUTPUT_CLK != "NONE" && REG_OUTPUT_CLK != "CLK0") ||
            REG_INPUTC_CLK != "NONE" || REG_PIPELINE_CLK != "NONE" ||
            MULT_BYPASS != "DISABLED" || RESETMODE != "SYNC") begin
            $display("MULT18X18D model %m: configuration not modelled");
            $fatal(1);
        end
    end

    always @(posedge CLK0) begin
        if (SOURCEA !== 1'b0 || SOURCEB !== 1'b0) begin
            $display("MULT18X18D model %m: the shift inputs (SOURCEA/SOURCEB) are not modelled");
            $fatal(1);
        end
    end
endmodule
`default_nettype wire
